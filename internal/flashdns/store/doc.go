// Package store is FlashDNS's state in Chainfire (the etcd v3 API, through
// go.etcd.io/etcd/client/v3) and each replica's in-memory copy of it, from
// which the DNS server answers. Every zone is held in memory with its
// record sets; an immutable zone.Snapshot is built for each zone whenever
// a Chainfire watch event touches it, and the snapshots of the served
// (enabled) zones form an immutable zone.Table that the store swaps
// atomically, so queries take no locks. Reads of the API (zones, record
// sets, exports) are served from memory too; writes are Chainfire
// transactions that return once the writer's own replica has applied
// them, so a client reads its own writes. Other replicas apply a change
// within the watch delay (milliseconds).
//
// # Key layout
//
// Everything is under /flashdns/. A zone id is the zone's DNS name in
// lower case without the trailing dot ("example.com",
// "2.0.192.in-addr.arpa"); it contains no '/', so each zone's keys are one
// range.
//
//	/flashdns/zones/<zone id>                         StoredZone: {Zone, generation}
//	/flashdns/rrsets/<zone id>/<gen>/<owner>/<TYPE>   RecordSet  (owner fully qualified: www.example.com.)
//	/flashdns/journal/<zone id>/<serial %010d>        JournalEntry, the change that led to serial
//	/flashdns/imports/<zone id>/<gen>                 marker of a generation being written (leased)
//
// Values are the flashdns.v1 messages, proto-binary: Zone without etag and
// record_set_count (derived), RecordSet normalized as the API returns it
// (ttl as given, 0 meaning the zone's default), JournalEntry. A zone key
// holds the Zone wrapped with the generation of its record-set keys (the
// wire form of a message {Zone zone = 1; string generation = 2;}): the
// generation is a random id, not part of the API.
//
// # Etags and serials
//
// Every change of a zone or of any of its record sets rewrites the zone
// key, so the zone key's mod revision is the zone's etag, and "nothing
// changed since I read it" is one comparison. Serials follow the API
// (zones.proto): the current Unix time when that is greater in RFC 1982
// arithmetic, else the old serial plus one; an imported file's serial is
// kept when it is greater. Every change of what a zone transfer holds
// bumps the serial exactly once.
//
// # Writes
//
// A change (ChangeRecordSets, UpdateZone, ImportZone replacing a zone) is
// planned against a copy of the zone in memory (the record sets are a
// copy-on-write B-tree, so the copy is free): Route 53 semantics for the
// change list, zone.ValidateSet on every new set and zone.ValidateZone on
// the whole resulting zone, quotas, the new serial, and the journal entry
// (the records removed and added, for IXFR). It is then written in ONE
// transaction: comparisons on the zone key's mod revision and on each
// touched record-set key's, the put of the zone, the puts and deletes of
// the touched sets, the journal entry and the deletes that keep the
// journal at Options.JournalLength entries. A comparison that fails means
// another replica changed the zone first: the store waits until it has
// seen that change and plans again (with an etag, the caller gets
// ErrEtagMismatch instead). This replica's writers of one zone take turns
// on a local lock, so they do not make each other retry.
//
// Bad input changes nothing: a request is checked completely before its
// one transaction is sent.
//
// # Changes larger than one transaction
//
// Chainfire, like etcd, bounds a transaction to --max-txn-ops operations
// (128) and a request to --max-request-bytes (1.5 MiB); a batch of 1000
// changes or the import of a 100000-set zone does not fit. Such a write
// goes to a new generation instead: the store puts a marker key under a
// lease, writes every record set of the zone's new content under
// /flashdns/rrsets/<zone id>/<new gen>/ in as many transactions as it
// takes (each comparing that the marker still exists, keeping the lease
// alive), and then switches in one small transaction: it compares the zone
// key's mod revision (and the marker), puts the zone with the new
// generation, deletes the old generation (one range delete), records the
// journal entry and deletes the marker. Until the switch every reader —
// this store, the other replicas, the DNS answers — sees the old content,
// from the switch on the new one: the change is atomic however large it
// is. Keys of a generation no zone names are ignored by the index (kept
// aside until their switch). A writer that fails before the switch deletes
// its generation; one that dies leaves it behind, and the sweep (every
// replica, every SweepInterval) deletes generations that no zone names
// and whose marker is gone (lease expired), comparing both in the delete.
// Large writes cost a full copy of the zone; they are rare (imports, huge
// batches), and a journal entry larger than MaxJournalBytes is not kept
// (IXFR then falls back to a full transfer).
//
// # Zones across tenants
//
// A DNS name is unique across the installation: creating a zone compares
// that its key does not exist. A zone inside or above another project's
// zone is refused (FAILED_PRECONDITION): since the DNS server answers from
// the closest enclosing zone, it would take over the other tenant's names.
// Both checks, and the per-project zone quota, are made against the index
// and held by comparing, in the create's transaction, that no zone key was
// created since the index's revision (a range comparison on
// /flashdns/zones/); concurrent creates therefore serialize, which is fine
// for how rarely zones are created. A zone of another project is
// ErrNotFound for every operation that names it.
//
// # Index, watch and snapshots
//
// Open reads /flashdns/ at one revision R (zones first, then the rest at
// R, paged), builds every zone's snapshot (in parallel) and starts one
// watch from R+1. Each watch response holds whole revisions; all its
// events are applied to the index, every touched zone is rebuilt once, the
// table is swapped once, and the OnSwap hook is called for each zone whose
// served snapshot changed (the DNS server's ZoneChanged sends NOTIFY);
// only then is the revision counted as applied (WaitRevision). A watch
// that falls behind a compaction is replaced by a full reload, which keeps
// the snapshots of zones whose zone key did not change; a watch that ends
// otherwise resumes from the applied revision. WaitRevision asks Chainfire
// for progress notifications, so it also returns for revisions that
// changed nothing under /flashdns/. A stored value that does not decode,
// or a zone whose snapshot does not build (data a newer version would
// reject), is logged and counted, and the zone keeps its previous
// snapshot.
//
// # Memory
//
// Each replica holds every zone twice over: the index's record sets and
// the snapshots. The records themselves are held once: sets in the index
// are immutable, so snapshots are built with zone.BuildShared, which keeps
// the index's records (they are parsed in the form snapshots serve: one
// owner string per name, 4-byte A addresses) instead of copying them.
// Loading or importing a large zone makes garbage several times its size,
// which the Go runtime would keep as heap for good (queries allocate
// nothing to reuse it), so after large changes the store returns free
// memory to the OS (Options.ReleaseMemoryAfter).
package store
