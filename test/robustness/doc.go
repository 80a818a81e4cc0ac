// Package robustness proves a multi-member cluster under failure: it starts
// N (3 by default) real server processes (bin/chainfire, or bin/etcd with
// PHOTON_ROBUSTNESS_SERVER=etcd) on loopback ports, drives clientv3 traffic
// at them (puts with unique values, deletes, transactions with compares,
// linearizable gets, and lease lifecycles) while a nemesis kills -9,
// restarts, pauses (SIGSTOP/SIGCONT) and partitions members one at a time,
// leader included, and then checks what the clients saw:
//
//   - the recorded history is linearizable against a key-value model with
//     revisions and leases (github.com/anishathalye/porcupine, partitioned
//     by key);
//   - every acknowledged write is in the final event log at its acknowledged
//     revision with its lease, every event was written by some client or
//     lease, revisions are contiguous and agree with real-time order, and
//     every read returned the state the event log has at the read's
//     revision;
//   - leases are not renewed after a revoke, and do not expire before their
//     TTL;
//   - every watch stream (one per member, from revision 1 with prev_kv,
//     reopened at last revision + 1 whenever its member restarts or loses the
//     leader) is ordered, has no duplicates or gaps, matches the final event
//     log and catches up with it;
//   - all members end with the same HashKV.
//
// Operations whose outcome the client could not learn (timeouts, broken
// connections) are recorded as pending: they may take effect at any time
// after their call. Pending puts and transactions are resolved from the
// final event log by their unique values, as etcd's own robustness tests do.
//
// # Partitions
//
// Members reach each other only through PeerNet: each member listens on its
// real --listen-peer-urls, but advertises (--initial-advertise-peer-urls,
// --initial-cluster) the address of a TCP proxy that the harness runs in
// front of it. The proxies apply a mode per directed link A->B (the
// connections A dials to B): pass, blackhole (connections stall both ways,
// new ones are accepted and held, and everything flows on when healed, as
// with dropped packets) or cut (connections are reset, new ones too).
//
// The obvious design, giving each member its own view of its peers' URLs,
// is impossible: Chainfire, like etcd, derives member IDs from the peer
// URLs in --initial-cluster and the cluster token, so all members must get
// the same --initial-cluster; and a proxy in front of B cannot tell A's
// connections from C's by address, since both dial from ephemeral ports of
// 127.0.0.1. So each proxy asks the kernel who dialed: /proc/net/tcp maps
// the connection's source port to a socket inode, and the member process
// holding that inode in /proc/<pid>/fd is the dialer (our own children:
// no root, Linux only). The peer transport needs nothing from this: it is
// plain gRPC, whatever it sends. A connection carries bytes both ways
// (requests and answers; etcd's rafthttp also streams messages back over
// connections the receiver dialed), so a link's mode applies to both
// directions of its connections, and a partition between A and B sets both
// A->B and B->A. A connection whose dialer is not found (it has exited)
// gets the strictest mode of the links into its destination.
//
// The nemesis uses two partitions, each blackholed or cut at random:
// isolating a member (the leader or a follower) from all others, and
// splitting the leader from one follower while both still reach the third.
// While a member is isolated it checks that a write through it is not
// acknowledged, that the others have (or elect) another leader, noting when
// the old leader still claims to lead meanwhile, and that a write through
// them is acknowledged; during a split, that a write through the third
// member is. After healing, a write through the member that was cut off
// must be acknowledged (healing restores progress). These probe writes are
// part of the history. Partitions, like the other faults, are in the test
// log, in the member logs ("===== robustness ... partition") and, on
// failure, in nemesis.json next to the history, on the history's clock.
//
// # Leases
//
// Lease clients run lifecycles on lease keys of their own (which the other
// clients touch rarely, as a write detaches a key from its lease): grant
// (TTL 2s), put with the lease, then keep-alive once and revoke, revoke,
// keep-alive once, or nothing, reading the key after each step. Every
// lease is attached to one key by one put, so its operations belong to
// that key's partition of the history. The model tracks each key's lease:
// a revoke deletes the key if it is still attached (creating a revision),
// "lease not found" from a revoke proves the key no longer attached, and
// reads report the key's lease. Expiry happens at a time no client sees,
// so it is modelled soundly from the event log: a DELETE of a key attached
// to lease L that no acknowledged delete or revoke accounts for becomes a
// lease-end operation of L, pending from L's grant (a lease may end at any
// time after it is granted) and resolved at the DELETE's revision; leases
// that deleted nothing get none. Pending revokes are covered by the same
// lease-end. A keep-alive changes no key: its answers only feed the
// renewal and early-expiry checks (CheckLeases). Before the final reads,
// every lease left is revoked, as part of the history, so that no lease
// ends after the final revision. The checker unit tests show the model
// rejecting, among others, a read of a revoked lease's key; the run
// itself also re-checks its own history with such a read injected.
//
// A failed check writes the history (JSON, as recorded and as checked),
// the porcupine visualization (HTML), the event log, the watch streams,
// the nemesis actions and the member logs to a directory under
// os.TempDir() whose name is in the failure message, so that it survives
// the test.
//
// `make test` runs the bounded form (60s of traffic, until the first round
// of faults is done, at most 45s longer; a bit over a minute in all).
// PHOTON_SOAK=1 runs the long form for PHOTON_SOAK_DURATION (default 10m;
// `make soak` asks for 30m):
//
//	make build etcd && go test -race -count=1 ./test/robustness/
//	PHOTON_ROBUSTNESS_SERVER=etcd go test -race -count=1 ./test/robustness/
//	PHOTON_SOAK=1 PHOTON_SOAK_DURATION=30m go test -count=1 -timeout 0 -run TestRobustness ./test/robustness/
//
// A server that cannot form a multi-member cluster (Chainfire before
// replication: it exits saying "multi-member clusters are not supported")
// makes TestRobustness skip with that message; the checker self-tests run
// regardless.
package robustness
