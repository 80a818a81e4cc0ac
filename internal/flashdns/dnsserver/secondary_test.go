package dnsserver

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/photoncloud/photoncloud/internal/flashdns/zone"
)

// secondaryZone is sec.test. at serial with www pointing at 192.0.2.<serial>
// and the given journal.
func secondaryZone(t *testing.T, serial int, journal []zone.Diff) *zone.Snapshot {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "$ORIGIN sec.test.\n$TTL 300\n@ SOA ns.sec.test. h.sec.test. %d 60 60 600 60\n@ NS ns.sec.test.\nns A 192.0.2.53\nwww A 192.0.2.%d\n", serial, serial)
	// Large enough for several transfer messages, each TSIG-signed.
	for i := range 3000 {
		fmt.Fprintf(&b, "h%d TXT \"host %d of a zone that needs several transfer messages\"\n", i, i)
	}
	d, err := zone.ParseZoneFile(strings.NewReader(b.String()), "sec.test.", 300)
	if err != nil {
		t.Fatal(err)
	}
	d.Journal = journal
	s, err := zone.Build(d)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func wwwDiff(t *testing.T, from, to int) zone.Diff {
	rr := func(n int) dns.RR {
		r, err := dns.NewRR(fmt.Sprintf("www.sec.test. 300 IN A 192.0.2.%d", n))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	return zone.Diff{FromSerial: uint32(from), ToSerial: uint32(to), Deleted: []dns.RR{rr(from)}, Added: []dns.RR{rr(to)}}
}

// TestNSDSecondary runs nsd 4.6 as a secondary of our server: it transfers
// the zone with TSIG, and each change reaches it through a signed NOTIFY
// followed by IXFR (from the journal) or AXFR (when the journal does not
// reach back far enough).
func TestNSDSecondary(t *testing.T) {
	s := startTest(t, func(c *Config) {
		c.TransferACL = nil // TSIG only
		c.TransferRequireTSIG = true
		c.NotifyTimeout = 200 * time.Millisecond
	})
	z := secondaryZone(t, 3, nil)
	s.zones.Store(s.zones.Load().With(z))
	extra := fmt.Sprintf(`zone:
  name: sec.test
  zonefile: sec.test.zone
  request-xfr: %s k256.
  allow-notify: 127.0.0.1 k256.
`, strings.Replace(s.tcp, ":", "@", 1))
	nsd, dir := startNSD(t, map[string]string{"example.com.": exampleZone()}, extra)
	// NOTIFY needs to know where NSD listens, so add the target now: a
	// second server shares the zone table and only sends NOTIFYs.
	n := startTest(t, func(c *Config) {
		c.Zones = s.zones.Load
		c.NotifyTargets = []string{nsd + " key k256."}
		c.NotifyTimeout = 200 * time.Millisecond
	})

	c := &dns.Client{Timeout: time.Second}
	waitWWW := func(want string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			r, _, err := c.Exchange(query("www.sec.test.", dns.TypeA), nsd)
			if err == nil && len(r.Answer) == 1 && r.Answer[0].(*dns.A).A.String() == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("nsd never answered www.sec.test. %s: %v %v", want, r, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// The initial transfer: NSD asks on its own at startup (and on NOTIFY).
	n.ZoneChanged(nil, z)
	waitWWW("192.0.2.3")
	if v := metricValue(s.h.m.transfers.WithLabelValues("sec.test.", "axfr", "ok")) +
		metricValue(s.h.m.transfers.WithLabelValues("sec.test.", "ixfr", "axfr")); v < 1 {
		t.Fatalf("no full transfer counted")
	}
	// A change covered by the journal: IXFR.
	z4 := secondaryZone(t, 4, []zone.Diff{wwwDiff(t, 3, 4)})
	s.zones.Store(s.zones.Load().With(z4))
	n.ZoneChanged(z, z4)
	waitWWW("192.0.2.4")
	if v := metricValue(s.h.m.transfers.WithLabelValues("sec.test.", "ixfr", "ok")); v < 1 {
		t.Fatalf("no incremental transfer counted")
	}
	// A change the journal does not cover (from 4): IXFR answered with the
	// whole zone.
	z6 := secondaryZone(t, 6, []zone.Diff{wwwDiff(t, 5, 6)})
	s.zones.Store(s.zones.Load().With(z6))
	n.ZoneChanged(z4, z6)
	waitWWW("192.0.2.6")
	if v := metricValue(s.h.m.transfers.WithLabelValues("sec.test.", "ixfr", "axfr")); v < 1 {
		t.Fatalf("no IXFR fallback counted")
	}
	if v := metricValue(n.h.m.notifies.WithLabelValues(nsd, "ok")); v < 3 {
		t.Fatalf("notifies ok = %v", v)
	}
	// NSD accepted every transfer as it was (no TSIG or IXFR complaints).
	log, _ := os.ReadFile(filepath.Join(dir, "nsd.log"))
	for _, l := range strings.Split(string(log), "\n") {
		if strings.Contains(l, "error") || strings.Contains(l, "bad") || strings.Contains(l, "fail") || strings.Contains(l, "warning") {
			t.Errorf("nsd: %s", l)
		}
	}
	if testing.Verbose() {
		t.Logf("nsd log:\n%s", log)
	}
	// Without the key NSD could not have transferred: the ACL is empty.
	if r := exchange(t, s.tcp, "tcp", query("sec.test.", dns.TypeAXFR)); r.Rcode != dns.RcodeRefused {
		t.Fatalf("unsigned AXFR: %v", r)
	}
}
