package zone

import (
	"errors"
	"net/netip"

	"github.com/miekg/dns"
)

// ErrInvalid is wrapped by every validation error so that callers (the store,
// the API) can map it to InvalidArgument with errors.Is.
var ErrInvalid = errors.New("invalid zone data")

// RRSet is all records of one owner name and type. They share one TTL; the
// records' headers carry Name, Rrtype, Class IN and Ttl filled in.
type RRSet struct {
	Name string
	Type uint16
	TTL  uint32
	RRs  []dns.RR
}

// Reverse configures PTR synthesis for a reverse zone: addresses inside Prefix
// without an explicit PTR record get a PTR computed from Pattern (see the
// reverse zone rules in reverse.go). TTL is the TTL of synthesised PTRs; 0
// means the SOA record's TTL.
type Reverse struct {
	Prefix  netip.Prefix
	Pattern string
	TTL     uint32
}

// Diff is one serial change for IXFR. The SOA records are not part of Deleted
// or Added; IXFR inserts them.
type Diff struct {
	FromSerial, ToSerial uint32
	Deleted, Added       []dns.RR
}

// Data describes one zone. Sets exclude the SOA and include the apex NS set.
// Journal is ordered oldest first and should end at SOA.Serial.
type Data struct {
	Origin  string
	SOA     *dns.SOA
	Sets    []RRSet
	Reverse *Reverse
	Journal []Diff
}

// Result is the answer to one question. The DNS server adds the header, EDNS
// and truncation handling.
//
// Truncation the way NSD does it: if an RRset of Answer, or of Ns when
// OptionalNs is false (referral NS, negative-answer SOA), does not fit, the
// RRset is left out and TC is set. Ns with OptionalNs (the apex NS beside a
// positive answer) and Extra are dropped RRset by RRset without TC. The
// records of one RRset are adjacent in every section.
//
// The slices are shared with the snapshot and read-only; they have
// len == cap, so appending copies.
type Result struct {
	Rcode         int
	Authoritative bool
	Answer, Ns    []dns.RR
	Extra         []dns.RR
	// OptionalNs marks Ns as the optional apex NS of a positive answer.
	OptionalNs bool
}
