package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	aegisv1 "github.com/photoncloud/photoncloud/api/aegis/v1"
	flashdnsv1 "github.com/photoncloud/photoncloud/api/flashdns/v1"
	"github.com/photoncloud/photoncloud/test/testenv"
)

// The FlashDNS tests run bin/chainfire, bin/aegis, bin/flashdns and
// bin/photon as separate processes, manage zones with photon and ask the
// real dig (and NSD, as a secondary) what FlashDNS answers, the way an
// operator would check an installation.

const (
	bobPassword = "e2e bob password"
	bob         = "orgs/globex/users/bob"
	// dnsPropagation is issue 5's bound for a change made through one
	// replica to be answered by every replica.
	dnsPropagation = time.Second
	// exampleSerial is the serial of exampleZone's SOA, which an import
	// keeps.
	exampleSerial = 2026112701
	// xfrKey signs zone transfers and NOTIFYs; the secret is base64.
	xfrKeyName   = "xfr-key."
	xfrKeySecret = "ZTJlLWZsYXNoZG5zLXRyYW5zZmVyLWtleS1zZWNyZXQ="
)

// exampleZone is a zone file as an operator moving a domain would have
// it: directives, a multi-line SOA, relative names, TTLs on some records,
// a CNAME, a wildcard and the usual mail, SRV, TXT and CAA records.
const exampleZone = `; example.org, moved from the old DNS server
$ORIGIN example.org.
$TTL 3600
@          IN SOA   ns1.example.org. hostmaster.example.org. (
                    2026112701 ; serial
                    7200       ; refresh
                    3600       ; retry
                    1209600    ; expire
                    300 )      ; negative TTL
           IN NS    ns1.example.org.
           IN NS    ns2.example.net.
           IN A     192.0.2.10
           IN MX    10 mail.example.org.
           IN TXT   "v=spf1 mx -all"
           IN CAA   0 issue "letsencrypt.org"
ns1        IN A     192.0.2.53
www    300 IN A     192.0.2.80
www    300 IN A     192.0.2.81
www        IN AAAA  2001:db8::80
ftp        IN CNAME www
mail       IN A     192.0.2.25
_sip._tcp  IN SRV   10 60 5060 sip.example.org.
sip        IN A     192.0.2.60
*.apps     IN A     192.0.2.90
`

// dnsStack is a Chainfire and an Aegis whose admin is logged in with
// photon, and FlashDNS's service account at that Aegis: what a FlashDNS
// replica needs before it starts.
type dnsStack struct {
	aegis *Aegis
	admin *Photon
	key   *aegisv1.ServiceAccountKey
}

// startDNSStack starts Chainfire and Aegis, logs the admin in and gives
// FlashDNS its identity as an operator would with photon: the service
// account orgs/system/serviceAccounts/flashdns, role aegis.authzChecker on
// system (to ask Aegis about its callers) and a key.
func startDNSStack(t *testing.T) *dnsStack {
	t.Helper()
	FindFlashDNSBinary(t) // before starting anything
	a := startAegisStack(t)
	s := &dnsStack{aegis: a, admin: NewPhoton(t, a)}
	s.admin.OK(adminPassword+"\n", "login", "--username", "admin", "--password-stdin")
	s.admin.OK("", "iam", "sa", "create", "flashdns", "--org", "system")
	createBinding(t, s.admin, "orgs/system/serviceAccounts/flashdns", "roles/aegis.authzChecker", "system", false)
	s.key = &aegisv1.ServiceAccountKey{}
	decodeProto(t, "sa keys create", s.admin.OK("", "iam", "sa", "keys", "create", "flashdns", "--org", "system", "-o", "json"), s.key)
	if s.key.GetClientId() == "" || s.key.GetClientSecret() == "" {
		t.Fatalf("sa keys create printed no client id or secret: %v", s.key)
	}
	return s
}

// flashDNS starts a replica on the stack's Chainfire, authorized by its
// Aegis as FlashDNS's service account.
func (s *dnsStack) flashDNS(t *testing.T, opts FlashDNSOptions) *FlashDNS {
	t.Helper()
	opts.ChainfireEndpoints = s.aegis.opts.ChainfireEndpoints
	opts.Aegis, opts.ClientID, opts.ClientSecret = s.aegis, s.key.GetClientId(), s.key.GetClientSecret()
	return StartFlashDNS(t, opts)
}

// writeZoneFile writes text to a file named for origin.
func writeZoneFile(t testing.TB, origin, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), strings.TrimSuffix(origin, ".")+".zone")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// zoneFileRecords reads a zone file with miekg/dns's parser, independent
// of FlashDNS's import: what a transfer of the zone must contain.
func zoneFileRecords(t testing.TB, origin, text string) []dns.RR {
	t.Helper()
	zp := dns.NewZoneParser(strings.NewReader(text), origin, "")
	var rrs []dns.RR
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		rrs = append(rrs, rr)
	}
	if err := zp.Err(); err != nil {
		t.Fatalf("parse zone file of %s: %v", origin, err)
	}
	return rrs
}

// rrKeys are records as sorted presentation lines with lower-case owner
// names, for comparing record sets regardless of order and of the case
// a server echoes.
func rrKeys(rrs []dns.RR) []string {
	keys := make([]string, 0, len(rrs))
	for _, rr := range rrs {
		c := dns.Copy(rr)
		c.Header().Name = strings.ToLower(c.Header().Name)
		keys = append(keys, c.String())
	}
	slices.Sort(keys)
	return keys
}

// mustRRs parses records in presentation format.
func mustRRs(t testing.TB, lines ...string) []dns.RR {
	t.Helper()
	var rrs []dns.RR
	for _, l := range lines {
		rr, err := dns.NewRR(l)
		if err != nil {
			t.Fatalf("record %q: %v", l, err)
		}
		rrs = append(rrs, rr)
	}
	return rrs
}

// sameRRs reports a difference between two record sets, or "".
func sameRRs(got, want []dns.RR) string {
	g, w := rrKeys(got), rrKeys(want)
	if slices.Equal(g, w) {
		return ""
	}
	return fmt.Sprintf("got:\n  %s\nwant:\n  %s", strings.Join(g, "\n  "), strings.Join(w, "\n  "))
}

// transferBody checks that a transfer starts and ends with the SOA and
// returns the records without the closing SOA: the zone's content.
func transferBody(t testing.TB, what string, rrs []dns.RR) []dns.RR {
	t.Helper()
	if len(rrs) < 2 || rrs[0].Header().Rrtype != dns.TypeSOA || rrs[len(rrs)-1].Header().Rrtype != dns.TypeSOA {
		t.Fatalf("%s: %d records, want SOA first and last:\n%v", what, len(rrs), rrs)
	}
	return rrs[:len(rrs)-1]
}

// importZone imports a zone file with photon and returns the zone and the
// time photon returned (the acknowledgement).
func importZone(t testing.TB, fd *FlashDNS, p *Photon, org, project, file string) (*flashdnsv1.Zone, time.Time) {
	t.Helper()
	out := fd.DNS(p, "zone", "import", "--org", org, "--project", project, "--file", file, "-o", "json")
	acked := time.Now()
	z := &flashdnsv1.Zone{}
	decodeProto(t, "zone import", out, z)
	return z, acked
}

// setRecord upserts a record set with photon and returns the acknowledged
// serial and the time photon returned (the acknowledgement).
func setRecord(t testing.TB, fd *FlashDNS, p *Photon, zone string, args ...string) (uint32, time.Time) {
	t.Helper()
	all := append([]string{"record", "set", "--zone", zone, "-o", "json"}, args...)
	out := fd.DNS(p, all...)
	acked := time.Now()
	r := &flashdnsv1.ChangeRecordSetsResponse{}
	decodeProto(t, "record set", out, r)
	if r.GetSerial() == 0 {
		t.Fatalf("record set %v: no serial in %s", args, out)
	}
	return r.GetSerial(), acked
}

// answers reports whether fd answers name/qtype authoritatively with
// exactly want.
func answers(ctx context.Context, fd *FlashDNS, name string, qtype uint16, want []dns.RR) bool {
	r, err := fd.Query(ctx, name, qtype)
	return err == nil && r.Rcode == dns.RcodeSuccess && r.Authoritative && sameRRs(r.Answer, want) == ""
}

// waitAnswered polls every replica until each answers name/qtype with
// exactly want, measuring from acked (when the change was acknowledged),
// and fails the test unless every one did within dnsPropagation.
func waitAnswered(t testing.TB, ctx context.Context, acked time.Time, what, name string, qtype uint16, want []dns.RR, fds ...*FlashDNS) {
	t.Helper()
	done := make([]bool, len(fds))
	took, ok := pollFor(acked, 5*time.Second, func() bool {
		all := true
		for i, fd := range fds {
			if !done[i] {
				done[i] = answers(ctx, fd, name, qtype, want)
			}
			all = all && done[i]
		}
		return all
	})
	t.Logf("%s: answered by every replica %v after the acknowledgement", what, took)
	if !ok || took > dnsPropagation {
		var late []string
		for i, fd := range fds {
			if !done[i] {
				r, err := fd.Query(ctx, name, qtype)
				late = append(late, fmt.Sprintf("%s answers (err %v):\n%v", fd.Name, err, r))
			}
		}
		t.Fatalf("%s: answered by every replica after %v (ok=%v), want within %v; want answer:\n%v\n%s",
			what, took, ok, dnsPropagation, want, strings.Join(late, "\n"))
	}
}

// soaSerial asks fd for zone's SOA serial (0 when it does not answer it).
func soaSerial(ctx context.Context, fd *FlashDNS, zone string) uint32 {
	r, err := fd.Query(ctx, zone, dns.TypeSOA)
	if err != nil || r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
		return 0
	}
	if soa, ok := r.Answer[0].(*dns.SOA); ok {
		return soa.Serial
	}
	return 0
}

// TestFlashDNSAcceptance is issue 5's acceptance flow with the real
// binaries: FlashDNS runs as its own service account of Aegis, a tenant
// user logs in with photon and imports a real zone file, dig gets the
// zone's answers, and dig AXFR from an allowed address gets the zone. Then
// tenant isolation through the real Aegis: a user of another org cannot
// see the zone, change it or take its name.
func TestFlashDNSAcceptance(t *testing.T) {
	testenv.RequireTool(t, "dig") // before starting anything
	s := startDNSStack(t)
	fd := s.flashDNS(t, FlashDNSOptions{TransferAllow: []string{"127.0.0.0/8"}})
	ctx := Ctx(t, time.Minute)

	// Two tenants: alice may edit acme's project web, bob administers
	// globex.
	admin := s.admin
	admin.OK("", "iam", "orgs", "create", "acme")
	admin.OK("", "iam", "projects", "create", "web", "--org", "acme")
	admin.OK(alicePassword+"\n", "iam", "users", "create", "alice", "--org", "acme", "--password-stdin")
	createBinding(t, admin, alice, "ProjectEditor", webProject, false)
	admin.OK("", "iam", "orgs", "create", "globex")
	admin.OK("", "iam", "projects", "create", "shop", "--org", "globex")
	admin.OK(bobPassword+"\n", "iam", "users", "create", "bob", "--org", "globex", "--password-stdin")
	createBinding(t, admin, bob, "OrgAdmin", "orgs/globex", false)

	al := NewPhoton(t, s.aegis)
	wantContains(t, "alice login", al.OK(alicePassword+"\n", "login", "--username", "alice@acme", "--password-stdin"), "as "+alice)
	file := writeZoneFile(t, "example.org.", exampleZone)
	z, _ := importZone(t, fd, al, "acme", "web", file)
	if z.GetName() != webProject+"/zones/example.org" || z.GetSerial() != exampleSerial {
		t.Fatalf("imported zone %s with serial %d, want %s/zones/example.org with the file's serial %d",
			z.GetName(), z.GetSerial(), webProject, exampleSerial)
	}

	// dig answers from the imported zone, authoritatively.
	for _, tc := range []struct {
		args   []string
		status string
		want   []string
	}{
		{[]string{"www.example.org", "A"}, "NOERROR", []string{"www.example.org. 300 IN A 192.0.2.80", "www.example.org. 300 IN A 192.0.2.81"}},
		{[]string{"WWW.Example.ORG", "AAAA"}, "NOERROR", []string{"www.example.org. 3600 IN AAAA 2001:db8::80"}},
		{[]string{"ftp.example.org", "A"}, "NOERROR", []string{"ftp.example.org. 3600 IN CNAME www.example.org.",
			"www.example.org. 300 IN A 192.0.2.80", "www.example.org. 300 IN A 192.0.2.81"}},
		{[]string{"example.org", "MX"}, "NOERROR", []string{"example.org. 3600 IN MX 10 mail.example.org."}},
		{[]string{"example.org", "TXT"}, "NOERROR", []string{`example.org. 3600 IN TXT "v=spf1 mx -all"`}},
		{[]string{"_sip._tcp.example.org", "SRV"}, "NOERROR", []string{"_sip._tcp.example.org. 3600 IN SRV 10 60 5060 sip.example.org."}},
		{[]string{"build.apps.example.org", "A"}, "NOERROR", []string{"build.apps.example.org. 3600 IN A 192.0.2.90"}},
		{[]string{"example.org", "SOA"}, "NOERROR", []string{"example.org. 3600 IN SOA ns1.example.org. hostmaster.example.org. 2026112701 7200 3600 1209600 300"}},
		{[]string{"nope.example.org", "A"}, "NXDOMAIN", nil},
		{[]string{"mail.example.org", "AAAA"}, "NOERROR", nil},
	} {
		what := "dig " + strings.Join(tc.args, " ")
		r := Dig(t, fd.DNSAddr(), append([]string{"+norec"}, tc.args...)...)
		if r.Status != tc.status || !r.HasFlag("aa") {
			t.Errorf("%s: status %q flags %v, want %s with aa:\n%s", what, r.Status, r.Flags, tc.status, r.Output)
		}
		if d := sameRRs(r.Records, mustRRs(t, tc.want...)); d != "" {
			t.Errorf("%s: answer differs:\n%s", what, d)
		}
	}
	// A name outside every zone is refused, as by any authoritative server.
	if r := Dig(t, fd.DNSAddr(), "+norec", "www.example.com", "A"); r.Status != "REFUSED" {
		t.Errorf("dig www.example.com (no such zone): status %q, want REFUSED:\n%s", r.Status, r.Output)
	}

	// dig AXFR from loopback (allowed) returns the zone file's records.
	axfr := Dig(t, fd.DNSAddr(), "example.org", "AXFR")
	body := transferBody(t, "dig AXFR example.org", axfr.Records)
	if d := sameRRs(body, zoneFileRecords(t, "example.org.", exampleZone)); d != "" {
		t.Errorf("dig AXFR example.org does not return the imported zone file:\n%s", d)
	}

	// bob, of another org, in a CLI of his own. FlashDNS asks Aegis about
	// him as its service account; the zone does not exist for him.
	bo := NewPhoton(t, s.aegis)
	bo.OK(bobPassword+"\n", "login", "--username", "bob@globex", "--password-stdin")
	for _, args := range [][]string{
		{"zone", "get", "example.org", "--org", "acme", "--project", "web"},
		{"zone", "export", webProject + "/zones/example.org"},
		{"record", "list", "--zone", "example.org", "--org", "acme", "--project", "web"},
		{"record", "set", "--zone", "example.org", "--org", "acme", "--project", "web", "www", "A", "203.0.113.66"},
		{"record", "delete", "--zone", "example.org", "--org", "acme", "--project", "web", "www", "A"},
		{"zone", "delete", "example.org", "--org", "acme", "--project", "web", "--force"},
		{"zone", "list", "--org", "acme", "--project", "web"},
	} {
		r := fd.DNSRun(bo, args...)
		if r.Code != 1 || !strings.Contains(r.Stderr, "not found") {
			t.Errorf("bob: want exit 1 and not found: %v", r)
		}
	}
	// A DNS name is public, so his own import of it says it exists
	// (without saying where), and a zone below it is refused.
	r := fd.DNSRun(bo, "zone", "import", "--org", "globex", "--project", "shop", "--file", file)
	if r.Code != 1 || !strings.Contains(r.Stderr, "already exists") {
		t.Errorf("bob imports example.org into his project: want exit 1 and already exists: %v", r)
	}
	if strings.Contains(r.Stderr, "acme") {
		t.Errorf("bob's failed import names acme's project: %s", r.Stderr)
	}
	r = fd.DNSRun(bo, "zone", "create", "evil.example.org", "--org", "globex", "--project", "shop", "--nameserver", "ns1.globex.test.")
	if r.Code != 1 || !strings.Contains(r.Stderr, "refused") {
		t.Errorf("bob creates a zone below acme's example.org: want exit 1 and refused (FAILED_PRECONDITION): %v", r)
	}
	// None of it changed what is served; alice still owns the zone.
	if r := Dig(t, fd.DNSAddr(), "+norec", "www.example.org", "A"); sameRRs(r.Records, mustRRs(t,
		"www.example.org. 300 IN A 192.0.2.80", "www.example.org. 300 IN A 192.0.2.81")) != "" {
		t.Errorf("after bob's attempts, www.example.org A:\n%s", r.Output)
	}
	if got := soaSerial(ctx, fd, "example.org."); got != exampleSerial {
		t.Errorf("after bob's attempts the serial is %d, want %d", got, exampleSerial)
	}
	if r := Dig(t, fd.DNSAddr(), "+norec", "x.evil.example.org", "A"); r.Status != "NXDOMAIN" {
		t.Errorf("dig x.evil.example.org: status %q, want NXDOMAIN from acme's zone:\n%s", r.Status, r.Output)
	}
	zones := fd.DNS(al, "zone", "list", "--org", "acme", "--project", "web")
	wantContains(t, "alice's zone list", zones, "example.org")
}

// TestFlashDNSReplicas runs two bin/flashdns on one bin/chainfire: they
// answer the same, a change made through either is answered by both
// within a second of being acknowledged, and a replica killed with
// SIGKILL and restarted serves every acknowledged zone again and follows
// new changes. Replica a allows transfers from loopback; b only with TSIG.
func TestFlashDNSReplicas(t *testing.T) {
	s := startDNSStack(t)
	tsig := "hmac-sha256:" + xfrKeyName + ":" + xfrKeySecret
	key := &testenv.TSIGKey{Name: xfrKeyName, Secret: xfrKeySecret}
	a := s.flashDNS(t, FlashDNSOptions{Name: "flashdns-a", TransferAllow: []string{"127.0.0.0/8"}})
	b := s.flashDNS(t, FlashDNSOptions{Name: "flashdns-b", TSIGKeys: []string{tsig}})
	ctx := Ctx(t, 2*time.Minute)
	admin := s.admin
	admin.OK("", "iam", "orgs", "create", "acme")
	admin.OK("", "iam", "projects", "create", "web", "--org", "acme")

	// Two processes: each says who it is (CHAOS id.server, --chaos-id).
	for _, fd := range []*FlashDNS{a, b} {
		r, err := fd.QueryClass(ctx, "id.server.", dns.TypeTXT, dns.ClassCHAOS)
		if err != nil || len(r.Answer) != 1 || !strings.Contains(r.Answer[0].String(), `"`+fd.Name+`"`) {
			t.Errorf("CHAOS TXT id.server at %s = %v, %v; want %q", fd.Name, r, err, fd.Name)
		}
	}

	z, acked := importZone(t, a, admin, "acme", "web", writeZoneFile(t, "example.org.", exampleZone))
	// Imported through a, served by b within the second, and then the
	// same answers to every question and the same zone by transfer.
	waitAnswered(t, ctx, acked, "import through a", "example.org.", dns.TypeSOA, mustRRs(t,
		"example.org. 3600 IN SOA ns1.example.org. hostmaster.example.org. 2026112701 7200 3600 1209600 300"), a, b)
	if z.GetSerial() != exampleSerial {
		t.Errorf("imported zone has serial %d, want the file's %d", z.GetSerial(), exampleSerial)
	}
	questions := []struct {
		name  string
		qtype uint16
	}{
		{"example.org.", dns.TypeSOA}, {"example.org.", dns.TypeNS}, {"example.org.", dns.TypeMX},
		{"www.example.org.", dns.TypeA}, {"ftp.example.org.", dns.TypeA}, {"x.apps.example.org.", dns.TypeA},
		{"nope.example.org.", dns.TypeA}, {"www.example.org.", dns.TypeTXT},
	}
	sameAnswers := func(step string) {
		t.Helper()
		for _, q := range questions {
			ra, errA := a.Query(ctx, q.name, q.qtype)
			rb, errB := b.Query(ctx, q.name, q.qtype)
			if errA != nil || errB != nil {
				t.Fatalf("%s: %s %s: a: %v, b: %v", step, q.name, dns.TypeToString[q.qtype], errA, errB)
			}
			if ra.Rcode != rb.Rcode || ra.Authoritative != rb.Authoritative || sameRRs(ra.Answer, rb.Answer) != "" || sameRRs(ra.Ns, rb.Ns) != "" {
				t.Errorf("%s: %s %s: the replicas answer differently:\na:\n%v\nb:\n%v", step, q.name, dns.TypeToString[q.qtype], ra, rb)
			}
		}
	}
	sameAnswers("after the import")
	axfrA, err := testenv.TransferZone(ctx, a.DNSAddr(), "example.org.", nil)
	if err != nil {
		t.Fatalf("AXFR from a: %v", err)
	}
	axfrB, err := testenv.TransferZone(ctx, b.DNSAddr(), "example.org.", key)
	if err != nil {
		t.Fatalf("TSIG-signed AXFR from b: %v", err)
	}
	if d := sameRRs(axfrA, axfrB); d != "" {
		t.Errorf("AXFR from a and b differ:\n%s", d)
	}
	// b allows no unsigned transfer, even from loopback.
	if _, err := testenv.TransferZone(ctx, b.DNSAddr(), "example.org.", nil); err == nil {
		t.Error("b (no --transfer-allow) sent the zone to an unsigned AXFR")
	}

	// A change through a, then one through b: each is answered by both
	// within a second of its acknowledgement.
	serial, acked := setRecord(t, a, admin, webProject+"/zones/example.org", "www", "A", "192.0.2.82", "--ttl", "60")
	waitAnswered(t, ctx, acked, "www A set through a", "www.example.org.", dns.TypeA,
		mustRRs(t, "www.example.org. 60 IN A 192.0.2.82"), a, b)
	if sa, sb := soaSerial(ctx, a, "example.org."), soaSerial(ctx, b, "example.org."); sa != serial || sb != serial {
		t.Errorf("after the change through a: serials a %d, b %d, want the acknowledged %d", sa, sb, serial)
	}
	_, acked = setRecord(t, b, admin, webProject+"/zones/example.org", "new", "TXT", "made through b")
	waitAnswered(t, ctx, acked, "new TXT set through b", "new.example.org.", dns.TypeTXT,
		mustRRs(t, `new.example.org. 3600 IN TXT "made through b"`), a, b)
	sameAnswers("after the changes")

	// The last acknowledged changes through b, then SIGKILL at once: a new
	// zone and one more record set.
	b.DNS(admin, "zone", "create", "example.net", "--org", "acme", "--project", "web", "--nameserver", "ns1.example.org.")
	lastSerial, _ := setRecord(t, b, admin, webProject+"/zones/example.org", "last", "A", "192.0.2.99")
	netSerial, _ := setRecord(t, b, admin, webProject+"/zones/example.net", "www", "AAAA", "2001:db8::1")
	b.Kill()
	b.Start()
	b.WaitReady()

	// Ready means loaded: every acknowledged zone is served at once, as
	// a holds it.
	for zone, serial := range map[string]uint32{"example.org.": lastSerial, "example.net.": netSerial} {
		if got := soaSerial(ctx, b, zone); got != serial {
			t.Errorf("restarted b serves %s at serial %d, want the acknowledged %d", zone, got, serial)
		}
		fromA, err := testenv.TransferZone(ctx, a.DNSAddr(), zone, nil)
		if err != nil {
			t.Fatalf("AXFR %s from a: %v", zone, err)
		}
		fromB, err := testenv.TransferZone(ctx, b.DNSAddr(), zone, key)
		if err != nil {
			t.Fatalf("AXFR %s from the restarted b: %v", zone, err)
		}
		if d := sameRRs(fromB, fromA); d != "" {
			t.Errorf("the restarted b holds %s differently from a:\n%s", zone, d)
		}
	}
	if !answers(ctx, b, "last.example.org.", dns.TypeA, mustRRs(t, "last.example.org. 3600 IN A 192.0.2.99")) {
		t.Error("the restarted b does not answer the change acknowledged just before SIGKILL")
	}
	sameAnswers("after b's restart")
	// And it follows changes again.
	_, acked = setRecord(t, a, admin, webProject+"/zones/example.net", "www", "AAAA", "2001:db8::2")
	waitAnswered(t, ctx, acked, "change through a after b's restart", "www.example.net.", dns.TypeAAAA,
		mustRRs(t, "www.example.net. 3600 IN AAAA 2001:db8::2"), a, b)
}

// nsdUpdate is NSD's (verbosity 1+) log line for an applied transfer.
var nsdUpdate = regexp.MustCompile(`received update to serial (\d+) .* TSIG verified with key \S+ of (\d+) bytes`)

// TestFlashDNSSecondaryNSD runs a real NSD as a secondary of bin/flashdns,
// TSIG-signed: NSD transfers the zone, then follows a change made through
// the API, announced by FlashDNS's NOTIFY and sent as an IXFR from the
// journal. The API runs without Aegis here; the other tests cover it.
func TestFlashDNSSecondaryNSD(t *testing.T) {
	testenv.RequireTool(t, "nsd") // before starting anything
	FindFlashDNSBinary(t)
	key := &testenv.TSIGKey{Name: xfrKeyName, Secret: xfrKeySecret}
	// NSD's port first: it is FlashDNS's --notify target.
	ports, err := testenv.FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	nsdAddr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	cf := StartServer(t, Options{Name: "cf"})
	fd := StartFlashDNS(t, FlashDNSOptions{
		ChainfireEndpoints: []string{cf.Endpoint()},
		TSIGKeys:           []string{"hmac-sha256:" + xfrKeyName + ":" + xfrKeySecret},
		Notify:             []string{nsdAddr + " key " + xfrKeyName},
	})
	ctx := Ctx(t, time.Minute)
	zones := flashdnsv1.NewZoneServiceClient(fd.Dial(t))
	z, err := zones.ImportZone(ctx, &flashdnsv1.ImportZoneRequest{Parent: webProject, ZoneFile: exampleZone})
	if err != nil {
		t.Fatalf("import: %v", err)
	}

	nsd := testenv.StartNSD(t, testenv.NSDConfig{Port: ports[0], Verbosity: 2, Zones: []testenv.NSDZone{{
		Name: "example.org.", Primary: fd.DNSAddr(), TSIG: key,
	}}})
	check := func(step string, serial uint32) {
		t.Helper()
		if _, err := nsd.WaitSerial(ctx, "example.org.", serial); err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		held, err := nsd.AXFR(ctx, "example.org.")
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		want, err := testenv.TransferZone(ctx, fd.DNSAddr(), "example.org.", key)
		if err != nil {
			t.Fatalf("%s: AXFR from flashdns: %v", step, err)
		}
		if d := sameRRs(held, want); d != "" {
			t.Fatalf("%s: the zone NSD holds differs from FlashDNS's:\n%s", step, d)
		}
	}
	check("initial transfer", z.GetSerial())

	// A change through the API: FlashDNS sends NOTIFY, NSD asks for IXFR
	// and gets the change from the journal.
	resp, err := flashdnsv1.NewRecordSetServiceClient(fd.Dial(t)).ChangeRecordSets(ctx, &flashdnsv1.ChangeRecordSetsRequest{
		Zone: z.GetName(), Changes: []*flashdnsv1.Change{{Action: flashdnsv1.Change_ACTION_UPSERT,
			RecordSet: &flashdnsv1.RecordSet{Name: "www", Type: "A", Ttl: 300, Records: []string{"192.0.2.80", "192.0.2.82"}}}},
	})
	if err != nil {
		t.Fatalf("change www A: %v", err)
	}
	check("update after NOTIFY", resp.GetSerial())
	if n := fd.Metric(t, "flashdns_dns_transfers_total", `zone="example.org."`, `type="ixfr"`, `result="ok"`); n < 1 {
		t.Errorf("FlashDNS served no incremental transfer (flashdns_dns_transfers_total ixfr ok = %v); NSD log:\n%s", n, nsd.LogTail(20))
	}
	if n := len(nsdUpdate.FindAllString(nsd.LogTail(200), -1)); n != 2 {
		t.Errorf("NSD logged %d TSIG-verified updates, want 2; log:\n%s", n, nsd.LogTail(40))
	}
}
