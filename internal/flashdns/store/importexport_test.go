package store

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/photoncloud/photoncloud/internal/flashdns/zone"
)

// TestImportErrorLines: a zone file the store refuses because of one
// record names that record's line, for the zone package's rules and for
// the store's own limits alike.
func TestImportErrorLines(t *testing.T) {
	const head = "$ORIGIN example.com.\n$TTL 300\n@ IN SOA ns1 hostmaster 1 7200 900 1209600 300\n@ NS ns1\nns1 A 192.0.2.1\n" // 5 lines
	var many strings.Builder
	for i := range maxRecordsPerSet + 1 {
		fmt.Fprintf(&many, "big A 10.0.%d.%d\n", i/256, i%256)
	}
	cases := map[string]struct {
		text, want string
		zoneErr    bool // the zone package's error, wrapping zone.ErrInvalid
	}{
		"syntax":          {head + "www A 192.0.2.300\n", "line 6: bad A A", true},
		"zone rule":       {head + "www A 192.0.2.1\nwww CNAME ns1\n", "line 7: www.example.com.: a CNAME cannot coexist", true},
		"no line, no SOA": {"$ORIGIN example.com.\n$TTL 300\nwww A 192.0.2.1\n", "zone file has no SOA record", true},
		"TTL 0":           {head + "www A 192.0.2.1\nwww 0 A 192.0.2.2\n", "line 7: record set www.example.com. A: TTL 0", false},
		"too many":        {head + many.String(), fmt.Sprintf("line %d: record set big.example.com. A has %d records", 6+maxRecordsPerSet, maxRecordsPerSet+1), false},
		"long record":     {head + "; x\ntxt TXT" + strings.Repeat(` "`+strings.Repeat("x", 250)+`"`, 17) + "\n", "line 7: record set txt.example.com. TXT: the record is", false},
		"large set":       {head + largeSet(), "line 11: record set txt.example.com. TXT is more than 16384 octets", false},
		"apex NS":         {"$ORIGIN example.com.\n$TTL 300\n@ IN SOA ns1 hostmaster 1 7200 900 1209600 300\n\n" + nsLines(17), "line 5: apex NS: ", false},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := (&Store{}).parseImport(ImportRequest{ZoneFile: c.text})
			if !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want InvalidArgument with %q", err, c.want)
			}
			if c.zoneErr && !errors.Is(err, zone.ErrInvalid) {
				t.Fatalf("err = %v does not wrap zone.ErrInvalid", err)
			}
			t.Log(err)
		})
	}
}

// largeSet is a TXT set of 6 records of 16 strings of 200 octets each
// (3.2 KB each in wire format), one record per line from line 6: the 6th
// (line 11) takes it over 16384 octets.
func largeSet() string {
	var b strings.Builder
	for i := range 6 {
		fmt.Fprintf(&b, "txt TXT \"%d\"%s\n", i, strings.Repeat(` "`+strings.Repeat("y", 200)+`"`, 16))
	}
	return b.String()
}

// nsLines returns n apex NS records, one per line.
func nsLines(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "@ NS ns%d.example.net.\n", i)
	}
	return b.String()
}

// TestParseAddrLikeParser: parseRecords's fast path for addresses gives
// exactly what the zone parser gives, and leaves everything else to it.
func TestParseAddrLikeParser(t *testing.T) {
	inputs := map[uint16][]string{
		dns.TypeA: {"192.0.2.1", " 192.0.2.1\t", "0.0.0.0", "255.255.255.255", "192.0.2.01", "192.0.2", "192.0.2.256",
			"::ffff:192.0.2.1", "2001:db8::1", "192.0.2.1 ; comment", "192.0.2.1%eth0", "(192.0.2.1)", `\049.0.2.1`, "192.0.2.1 x"},
		dns.TypeAAAA: {"2001:db8::1", " 2001:DB8::1 ", "::", "::ffff:192.0.2.1", "fe80::1%eth0", "192.0.2.1", "2001:db8::g",
			"2001:db8::1 ; c", "1:2:3:4:5:6:7:8:9"},
	}
	for typ, recs := range inputs {
		k := setKey{"www.example.com.", typ}
		for _, rec := range recs {
			got, gotErr := parseRecords("example.com.", k, 300, []string{rec})
			line := k.name + " 300 IN " + typeString(typ) + " " + rec + "\n"
			zp := dns.NewZoneParser(strings.NewReader(line), "example.com.", "")
			want, ok := zp.Next()
			if _, more := zp.Next(); zp.Err() != nil || !ok || more || want.Header().Rrtype != typ {
				if gotErr == nil {
					t.Errorf("%s %q: parsed to %v, the parser refuses it", typeString(typ), rec, got)
				}
				continue
			}
			if a, ok := want.(*dns.A); ok {
				a.A = a.A.To4()
			}
			if gotErr != nil || len(got) != 1 || !reflect.DeepEqual(got[0], want) {
				t.Errorf("%s %q: got %#v (%v), the parser gives %#v", typeString(typ), rec, got, gotErr, want)
			}
			if _, fast := parseAddr(typ, rec); fast && strings.ContainsAny(rec, ";()\\%") {
				t.Errorf("%s %q took the fast path", typeString(typ), rec)
			}
		}
	}
}
