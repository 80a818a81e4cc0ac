// Package dnsdiff is FlashDNS's differential test against NSD: the same
// zones are loaded into a real NSD (zone files) and into FlashDNS (through
// its API, on a Chainfire), a query corpus that hits every answer rule of
// the design is sent to both, and the answers must agree. The package also holds the pieces the test is
// made of (the rule-covering zones in testdata/, the corpus generator, the
// comparison), exported so that other suites and bench/flashdns can reuse
// them.
//
// # The zones
//
// testdata/example.com.zone covers the rules (each group of records says
// which in a comment): apex records; CNAMEs inside the zone, out of it,
// dangling, into a served child zone and into a delegation; wildcards with
// several types, beside explicit names, blocked by empty non-terminals,
// and wildcard CNAMEs; names that exist only as empty non-terminals; MX
// and SRV targets inside, outside and under a delegation; long TXT strings
// and sets larger than 512 and 1232 bytes; CAA; delegations with glue,
// without glue and mixed. testdata/sub.example.com.zone is the delegated
// child (served too, with a wildcard at its apex);
// 2.0.192.in-addr.arpa and 8.b.d.0.1.0.0.2.ip6.arpa are reverse zones with
// explicit PTRs.
//
// # The corpus
//
// Every owner name and every empty non-terminal of the zones, plus
// nonexistent names at several depths (below the apex, below empty
// non-terminals, below leaves, below wildcards and delegations), names
// outside every zone, and case variations, each asked for A, AAAA, CNAME,
// MX, TXT, SRV, NS, PTR, CAA, SOA, DS, HINFO (a type no record has) and
// ANY, over UDP without EDNS and with EDNS (1232 bytes), and a subset over
// TCP. EDNS probes in the style of ISC's compliance tester (version 1, DO,
// 512- and 4096-byte buffers, an unknown option, an unknown flag) ask a
// few questions of each answer kind.
//
// # The comparison
//
// For every query: rcode (extended rcode included: BADVERS), the QR, AA,
// TC, RD and RA flags, whether an OPT record came back and, if both sent
// one, its version, DO bit (but not in BADVERS answers, where NSD drops it
// and Knot echoes it), unknown flag bits and UDP size (EDNS options
// such as NSD's Extended DNS Error are not compared), and the question
// section as sent (the name's case echoed). Then:
//
//   - Positive answers (NOERROR with a record of the asked type, or any
//     answer to a CNAME query): the answer section as a set, ignoring the
//     order within and between RRsets and comparing names
//     case-insensitively, TTLs included. The authority and additional
//     sections are not compared: NS and glue beside a positive answer are
//     a free choice (NSD adds them, Knot does not).
//   - Everything else (NXDOMAIN, NODATA, referrals, REFUSED, CNAME chains
//     that end in one of those or leave the served zones): the answer,
//     authority and additional sections, each as a set (OPT excluded).
//   - Truncated answers (TC set by both): only rcode and flags; what a
//     server packs into a truncated answer is its own choice.
//
// # ANY
//
// NSD 4.6.1 answers ANY with a single RRset (its take on RFC 8482 4.1),
// over UDP and TCP alike: the first A, AAAA, SOA, MX or PTR RRset of the
// name, else another type, DNSSEC types last, and nothing beside it (no
// NS in authority). Which RRset that is depends on NSD's internal order, so
// it is not FlashDNS's to copy. For a positive ANY answer the test
// requires the same rcode and flags and a non-empty answer made of
// complete RRsets of the asked name, each identical to what NSD answers
// for that name and type; a single synthesized HINFO "RFC8482" record is
// also accepted. ANY at a name without data (empty non-terminal,
// NXDOMAIN, referral) is compared like any negative answer.
//
// # Running
//
// `go test ./test/dnsdiff` (part of `make test`) needs nsd and knotd
// (Debian packages nsd and knot); without them the tests skip, or fail
// when the environment variable CI is set. NSD runs with its defaults
// apart from what test/testenv changes to run it unprivileged (no chroot,
// state in a temp dir, Debian's response rate limiting off). A failure
// prints, per differing query, the problems and (for the first few) both
// answers in full; DNSDIFF_OUT=file also writes them to a file.
// TestKnotMatchesNSD runs the same corpus against Knot, a check on the
// comparison itself: what two mature servers legitimately answer
// differently must not be held against FlashDNS. startFlashDNS (in
// flashdns_test.go) is the one place that decides how FlashDNS gets the
// zones.
package dnsdiff
