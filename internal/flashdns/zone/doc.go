// Package zone is FlashDNS's in-memory model of authoritative zones: record
// validation, immutable query-ready snapshots, the answer rules, reverse PTR
// synthesis, zone transfers and zone files.
//
// # Model
//
// Data is the plain description of one zone, as the store keeps it: origin,
// the managed SOA, every other RRset (apex NS included), an optional Reverse
// PTR pattern and the IXFR journal. ValidateSet checks one RRset, ValidateZone
// the whole zone (the rules are listed on ValidateZone and ValidateSet); every
// error wraps ErrInvalid, so the API maps errors.Is(err, ErrInvalid) to
// InvalidArgument.
//
// Build validates Data and turns it into an immutable Snapshot. The query
// path (Lookup) only reads it, so any number of goroutines may query a
// snapshot while a new one is built; the server swaps whole snapshots (or
// whole Tables) atomically and never locks. Build does the work once, per
// change, instead of per query:
//
//   - a map from canonical owner name to node, with a node for every empty
//     non-terminal too, so existence is one map lookup and the closest
//     encloser one lookup per label;
//   - per node: its RRsets (SOA first, then by type number), its wildcard
//     child and the zone cut above it;
//   - per RRset: the complete additional section of a positive answer, in
//     NSD's order; per zone cut: the referral glue; per zone: the negative
//     SOA (TTL min(SOA TTL, MINIMUM)).
//
// So exact, negative and referral answers are returned from precomputed
// slices without allocation; wildcard, CNAME and synthesised PTR answers
// allocate the records they create.
//
// Memory: a zone has about as many RRsets and names as records, so the
// snapshot keeps per-name and per-set overhead small: nodes come from
// slabs, all RRsets are one array (each node's adjacent) and all records
// another (each set's adjacent), referred to by index. Build copies every
// record; BuildShared, which the store uses, keeps the records that are
// already in served form, so the store's record sets and the snapshot hold
// each record once.
//
// Names are canonical everywhere: lower case, fully qualified (Canonical).
// Build stores owner and target names canonical and gives every record its
// RRset's TTL. Answers carry owner names as stored, except wildcard and PTR
// synthesis, which use the qname as the client wrote it.
//
// Table is an immutable set of snapshots with closest-enclosing-zone Find.
// With and Without copy on write. Table.Lookup is what a server with several
// zones uses: like NSD it follows CNAMEs into every zone it serves and answers
// DS at a child apex from the parent.
//
// # Answer rules
//
// The rules (lookup.go) reproduce NSD 4.6 without minimal-responses, the
// default, checked by TestAgainstNSD and TestAgainstNSDRandom against a
// running nsd: rcode, AA and every section, in order. The choices that follow
// NSD and that clients can see:
//
//   - positive answers carry the apex NS in authority and the in-zone
//     addresses of the NS, MX and SRV targets in additional (Result.OptionalNs
//     marks that NS as droppable without TC);
//   - ANY returns one RRset (RFC 8482): the first of A, AAAA, SOA, MX, PTR,
//     else the last other set, in node order; NSD uses zone-file order, and
//     WriteZoneFile writes node order, so NSD loaded from it agrees;
//   - a CNAME loop stops the first time an owner repeats; a wildcard CNAME can
//     appear twice (for the qname, then for the target name), as in NSD;
//   - DS at a zone cut is answered by the parent side (NODATA);
//   - negative answers use TTL min(SOA TTL, MINIMUM) for the SOA.
//
// Reverse zones synthesise a PTR for every address of the prefix that has no
// PTR or CNAME; see reverse.go for the rules (NSD has no equivalent).
//
// # Transfers and zone files
//
// AXFR lists every explicit record in canonical order between two SOAs; IXFR
// serves the journal's contiguous suffix ending at the current serial in the
// RFC 1995 format. ParseZoneFile reads RFC 1035 files with limits
// (MaxZoneFileSize, MaxZoneRecords, no $INCLUDE); its errors about a record
// start with the record's line, and ParseZoneFileLines also returns the line
// of every record for callers with rules of their own. WriteZoneFile writes
// files that ParseZoneFile and NSD read back to the same zone.
package zone
