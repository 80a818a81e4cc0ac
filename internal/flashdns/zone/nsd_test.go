package zone

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

const nsdBinary = "/usr/sbin/nsd"

// TestAgainstNSD loads the testdata zones into a real NSD 4.x (from the
// zone files WriteZoneFile produces, which also checks that NSD reads them)
// and compares every answer of a generated query corpus with Table.Lookup:
// rcode, AA and all three sections, in section order for the answer and the
// additional section. It is the package-level check of the answer rules;
// test/dnsdiff does the same end to end over the wire.
func TestAgainstNSD(t *testing.T) {
	if testing.Short() {
		t.Skip("starts nsd")
	}
	if _, err := os.Stat(nsdBinary); err != nil {
		t.Skip("nsd not installed")
	}
	tab := loadTable(t)
	addr := startNSD(t, tab)

	c := &dns.Client{Net: "tcp", Timeout: 5 * time.Second}
	var diffs int
	queries := corpus(tab)
	for _, q := range queries {
		m := new(dns.Msg)
		m.SetQuestion(q.name, q.qtype)
		m.RecursionDesired = false
		resp, _, err := c.Exchange(m, addr)
		if err != nil {
			t.Fatalf("%s %s: %v", q.name, dns.TypeToString[q.qtype], err)
		}
		got, _ := tab.Lookup(q.name, q.qtype)
		if d := compareNSD(resp, got); d != "" {
			diffs++
			if diffs <= 30 {
				t.Errorf("%s %s:\n%s", q.name, dns.TypeToString[q.qtype], d)
			}
		}
	}
	t.Logf("%d queries compared, %d differences", len(queries), diffs)
}

type query struct {
	name  string
	qtype uint16
}

var corpusTypes = []uint16{
	dns.TypeA, dns.TypeAAAA, dns.TypeNS, dns.TypeSOA, dns.TypeCNAME, dns.TypeMX,
	dns.TypeTXT, dns.TypeSRV, dns.TypePTR, dns.TypeCAA, dns.TypeANY, dns.TypeDS,
	dns.TypeDNSKEY,
}

// corpus queries every name of every zone, a child and a sibling of each,
// a few names outside the zones and mixed-case spellings, with every type.
func corpus(tab *Table) []query {
	names := map[string]bool{"nothere.invalid.": true, "com.": true, "other.net.": true, "test.": true}
	for _, s := range tab.zones {
		for name := range s.nodes {
			names[name] = true
			names["x."+name] = true
			names["x.y."+name] = true
			if name != s.origin {
				names[strings.Replace(name, ".", "-z.", 1)] = true
			}
		}
	}
	names["WWW.Example.COM."] = true
	names["Foo.WILD.example.com."] = true
	names["Q.wc.example.com."] = true
	list := make([]string, 0, len(names))
	for n := range names {
		list = append(list, n)
	}
	slices.Sort(list)
	var out []query
	for _, n := range list {
		for _, t := range corpusTypes {
			out = append(out, query{n, t})
		}
	}
	return out
}

func compareNSD(resp *dns.Msg, got Result) string {
	var b strings.Builder
	if resp.Rcode != got.Rcode {
		fmt.Fprintf(&b, "  rcode nsd=%s flashdns=%s\n", dns.RcodeToString[resp.Rcode], dns.RcodeToString[got.Rcode])
	}
	if resp.Authoritative != got.Authoritative {
		fmt.Fprintf(&b, "  aa nsd=%v flashdns=%v\n", resp.Authoritative, got.Authoritative)
	}
	sec := func(name string, a, g []dns.RR, ordered bool) {
		as, gs := rrStrings(a, ordered), rrStrings(g, ordered)
		if !slices.Equal(as, gs) {
			fmt.Fprintf(&b, "  %s nsd:\n    %s\n  %s flashdns:\n    %s\n", name, strings.Join(as, "\n    "), name, strings.Join(gs, "\n    "))
		}
	}
	// NSD's order is deterministic (answer chain order, all A before all
	// AAAA in additional); FlashDNS keeps it, so compare in order, except
	// within an RRset where neither promises an order.
	sec("answer", resp.Answer, got.Answer, false)
	sec("authority", resp.Ns, got.Ns, false)
	sec("additional", resp.Extra, got.Extra, false)
	if b.Len() == 0 {
		sec("answer order", resp.Answer, got.Answer, true)
		sec("additional order", resp.Extra, got.Extra, true)
	}
	return b.String()
}

// startNSD writes the zones with WriteZoneFile, starts nsd on a free
// loopback port and returns its address.
func startNSD(t *testing.T, tab *Table) string {
	t.Helper()
	dir := t.TempDir()
	port := freePort(t)
	var conf strings.Builder
	fmt.Fprintf(&conf, `server:
  ip-address: 127.0.0.1
  port: %d
  username: ""
  chroot: ""
  zonesdir: %q
  pidfile: %q
  database: ""
  xfrdfile: %q
  zonelistfile: %q
  verbosity: 1
  server-count: 1
  tcp-count: 10
remote-control:
  control-enable: no
`, port, dir, filepath.Join(dir, "nsd.pid"), filepath.Join(dir, "xfrd.state"), filepath.Join(dir, "zone.list"))
	for _, s := range tab.zones {
		file := strings.TrimSuffix(s.origin, ".") + ".zone"
		f, err := os.Create(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		if err := WriteZoneFile(f, s, 0); err != nil {
			t.Fatal(err)
		}
		f.Close()
		fmt.Fprintf(&conf, "zone:\n  name: %q\n  zonefile: %q\n", s.origin, file)
	}
	confPath := filepath.Join(dir, "nsd.conf")
	if err := os.WriteFile(confPath, []byte(conf.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "nsd.log")
	cmd := exec.Command(nsdBinary, "-d", "-c", confPath, "-l", logPath)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	c := &dns.Client{Net: "tcp", Timeout: time.Second}
	deadline := time.Now().Add(20 * time.Second)
	for {
		// Every zone must be loaded.
		ok := true
		for _, s := range tab.zones {
			m := new(dns.Msg)
			m.SetQuestion(s.origin, dns.TypeSOA)
			if r, _, err := c.Exchange(m, addr); err != nil || len(r.Answer) != 1 {
				ok = false
				break
			}
		}
		if ok {
			return addr
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logPath)
			t.Fatalf("nsd did not start:\n%s", log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			u.Close()
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}
