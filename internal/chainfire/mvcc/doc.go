// Package mvcc is Chainfire's multi-version key-value store: the storage
// layer under the etcd v3 KV, Watch and Lease APIs.
//
// Every change is stored in Pebble under its revision (key prefix 'k': main
// and sub revision, big endian, plus a 't' suffix for tombstones), so history
// can be read at any revision newer than the last compaction. An in-memory
// B-tree maps each user key to its generations of revisions (like etcd's
// keyIndex) so that reads at a revision find the right Pebble key without
// scanning. Revision counters live under the 'm' prefix.
//
// There is a single writer (TxnWrite) at a time; readers run concurrently and
// only ever see fully committed transactions, because the index and the
// current revision are published after the Pebble batch is committed.
package mvcc
