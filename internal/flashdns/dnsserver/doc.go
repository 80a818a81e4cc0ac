// Package dnsserver is FlashDNS's authoritative DNS front end: it answers
// queries on UDP and TCP from the immutable zone snapshots of package zone,
// serves zone transfers to secondaries and sends them NOTIFY.
//
// Protocol behaviour follows the RFCs and, where they leave a choice, NSD
// 4.6 (checked against a running nsd; see nsd_test.go):
//
//   - Several SO_REUSEPORT sockets per address and protocol, each with its
//     own goroutine; UDP in recvmmsg/sendmmsg batches (udp.go, Linux only);
//     wildcard addresses answer from the address a query was sent to
//     (IP_PKTINFO). TCP: pipelined queries answered in order, idle timeout,
//     a bound on open connections.
//   - Requests are parsed in place and answers packed into per-goroutine
//     buffers with our own name compression, so the UDP query path does not
//     allocate. The zone table is read with one atomic load per query.
//   - FORMERR (qdcount != 1, records in answer/authority, bad OPT, ...) and
//     NOTIMP (unknown opcodes) are bare headers; NOTIFY is REFUSED (we are
//     the primary); packets with QR set or shorter than a header are
//     dropped. Names outside our zones are REFUSED without AA, with EDNS
//     Extended Error 20. Classes: IN, ANY (answered from IN data, AA off),
//     CHAOS for version.bind/version.server/id.server/hostname.bind.
//   - EDNS(0) (RFC 6891, RFC 8906): OPT echoed with our UDP size (1232 by
//     default), version 0, the DO bit echoed and all other flags cleared;
//     unknown options ignored; BADVERS for versions above 0; requested UDP
//     sizes below 512 count as 512. Responses that do not fit are cut at
//     RRset boundaries (RFC 2181 9): an answer RRset, or the NS set of a
//     referral, that does not fit sets TC; additional data and the NS set
//     beside an answer are silently left out.
//   - AXFR and IXFR over TCP to clients in TransferACL or signing with a
//     TSIG key; IXFR over UDP answers the SOA (with TC when the client is
//     behind). TSIG (RFC 8945, HMAC-SHA1/224/256/384/512) on any request.
//   - Server.ZoneChanged queues NOTIFY (RFC 1996) to NotifyTargets with
//     retries; a newer change supersedes a pending one.
package dnsserver
