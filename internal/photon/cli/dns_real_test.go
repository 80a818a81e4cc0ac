package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	aegisv1 "github.com/photoncloud/photoncloud/api/aegis/v1"
	aegisclient "github.com/photoncloud/photoncloud/client/aegis"
	"github.com/photoncloud/photoncloud/internal/chainfire/chainfiretest"
	"github.com/photoncloud/photoncloud/internal/flashdns"
	"github.com/photoncloud/photoncloud/internal/flashdns/server"
	"github.com/photoncloud/photoncloud/internal/flashdns/store"
)

// The tests in this file run `photon dns` against the real FlashDNS API:
// the store on an in-process Chainfire and the flashdns.v1 services behind
// client/aegis, which authenticates the CLI's token and asks the test's
// real Aegis (aegis_fixture_test.go) about every call, as bin/flashdns
// wires them. alice (OrgAdmin of acme) has every flashdns permission on
// acme's projects.

// testFlashDNS is a running FlashDNS API.
type testFlashDNS struct {
	url string // http://127.0.0.1:port
}

// startFlashDNS serves the FlashDNS API for a, on a Chainfire of its own.
// Its service account (system org, role aegis.authzChecker) asks Aegis
// about the callers.
func startFlashDNS(t *testing.T, a *testAegis) *testFlashDNS {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// FlashDNS's own identity at Aegis.
	admin := a.ctx(t)
	noErr[*aegisv1.ServiceAccount](t, "create flashdns service account")(a.identity().CreateServiceAccount(admin,
		&aegisv1.CreateServiceAccountRequest{Parent: "orgs/system", ServiceAccountId: "flashdns", ServiceAccount: &aegisv1.ServiceAccount{}}))
	a.bind(t, "system", "flashdns-checker", "orgs/system/serviceAccounts/flashdns", "roles/aegis.authzChecker")
	key := noErr[*aegisv1.ServiceAccountKey](t, "create flashdns key")(a.identity().CreateServiceAccountKey(admin,
		&aegisv1.CreateServiceAccountKeyRequest{Parent: "orgs/system/serviceAccounts/flashdns", Key: &aegisv1.ServiceAccountKey{}}))
	src, err := aegisclient.ServiceAccount{TokenURL: a.url + "/oauth2/token", ClientID: key.GetClientId(), ClientSecret: key.GetClientSecret(),
		HTTPClient: a.httpClient(t)}.TokenSource(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	aegisConn, err := grpc.NewClient(a.endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(aegisclient.TokenCredentials(src, false)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = aegisConn.Close() })

	cf := chainfiretest.Client(t, startChainfire(t))
	st, err := store.Open(ctx, store.Options{Client: cf, Logger: testLogger(), DefaultNameservers: []string{"ns1.photon.test."}})
	if err != nil {
		t.Fatalf("open flashdns store: %v", err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("close flashdns store: %v", err)
		}
	})
	authz, err := aegisclient.New(aegisclient.Config{
		Issuer: a.url, JWKSURL: a.url + "/.well-known/jwks.json", HTTPClient: a.httpClient(t),
		Authz: aegisv1.NewAuthzServiceClient(aegisConn), Rules: server.Rules(st), DenialCode: server.DenialCode,
		Logger: testLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = authz.Close() })
	api, err := server.New(server.Config{Store: st, Authorizer: authz, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(api.Close)

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(grpc.ChainUnaryInterceptor(authz.UnaryServerInterceptor()), grpc.MaxRecvMsgSize(maxZoneFileBytes+1<<20))
	api.Register(g)
	served := make(chan error, 1)
	go func() { served <- g.Serve(l) }()
	t.Cleanup(func() {
		g.Stop()
		if err := <-served; err != nil {
			t.Errorf("serve flashdns: %v", err)
		}
	})
	return &testFlashDNS{url: "http://" + l.Addr().String()}
}

// dnsJSON runs photon dns with -o json and decodes the output into v.
func dnsJSON(t *testing.T, v any, args ...string) {
	t.Helper()
	out := dnsOK(t, "", append(args, "-o", "json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("photon dns %q -o json: %v: %s", args, err, out)
	}
}

// TestDNSRealZonesAndRecords walks the zone and record commands through
// the real FlashDNS API.
func TestDNSRealZonesAndRecords(t *testing.T) {
	a := startAegis(t, aegisOptions{})
	d := startFlashDNS(t, a)
	cliEnvFor(t, a)
	t.Setenv(envFlashDNSURL, d.url)
	t.Setenv(envFlashDNSCACert, "")
	login(t)
	p := []string{"--org", "acme", "--project", "web"}
	with := func(args ...string) []string { return append(args, p...) }

	out := dnsOK(t, "", with("zone", "create", "Example.com.", "--nameserver", "ns1.example.net.,ns2.example.net.",
		"--admin", "hostmaster@example.com", "--default-ttl", "1h", "--label", "env=prod")...)
	for _, re := range []string{`(?m)^NAME +orgs/acme/projects/web/zones/example\.com$`, `(?m)^DNS NAME +example\.com\.$`,
		`(?m)^KIND +forward$`, `(?m)^ENABLED +yes$`, `(?m)^SERIAL +\d+$`, `(?m)^RECORD SETS +2$`,
		`(?m)^NAMESERVERS +ns1\.example\.net\.,ns2\.example\.net\.$`, `(?m)^PRIMARY NS +ns1\.example\.net\.$`,
		`(?m)^ADMIN +hostmaster\.example\.com\.$`, `(?m)^DEFAULT TTL +3600$`, `(?m)^LABELS +env=prod$`, `(?m)^ETAG +\S+$`} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Fatalf("zone create output does not match %s:\n%s", re, out)
		}
	}
	if errs := dnsFails(t, with("zone", "create", "example.com")...); !strings.HasPrefix(errs, "photon: create zone example.com: already exists: ") {
		t.Fatalf("create twice: %q", errs)
	}

	// Records: set is an UPSERT, each change a new serial.
	var z0 map[string]any
	dnsJSON(t, &z0, "zone", "get", "orgs/acme/projects/web/zones/example.com")
	serial0 := z0["serial"].(float64)
	if out := dnsOK(t, "", with("record", "set", "--zone", "example.com", "www", "A", "192.0.2.1", "192.0.2.2", "--ttl", "5m")...); !regexp.MustCompile(
		`^Set www A in orgs/acme/projects/web/zones/example\.com: serial \d+\.\n$`).MatchString(out) {
		t.Fatalf("record set: %q", out)
	}
	dnsOK(t, "", with("record", "set", "--zone", "example.com", "@", "MX", "10 mail.example.com.", "20 mail2.example.com.")...)
	dnsOK(t, "", with("record", "set", "--zone", "example.com", "@", "TXT", "v=spf1 mx -all")...)
	dnsOK(t, "", with("record", "set", "--zone", "example.com", "mail", "A", "192.0.2.25")...)
	dnsOK(t, "", with("record", "set", "--zone", "example.com", "www", "A", "192.0.2.1", "192.0.2.3", "--ttl", "300")...)
	var z1 map[string]any
	dnsJSON(t, &z1, with("zone", "get", "example.com")...)
	if z1["serial"].(float64) <= serial0 || z1["recordSetCount"] != float64(6) {
		t.Fatalf("after 5 changes: serial %v (was %v), %v record sets", z1["serial"], serial0, z1["recordSetCount"])
	}
	out = dnsOK(t, "", with("record", "list", "--zone", "example.com")...)
	want := `NAME               TYPE  TTL      DATA
example.com.       NS    default  ns1.example.net.
example.com.       NS    default  ns2.example.net.
example.com.       SOA   3600     ns1.example.net. hostmaster.example.com. SERIAL 3600 600 1209600 300
example.com.       MX    default  10 mail.example.com.
example.com.       MX    default  20 mail2.example.com.
example.com.       TXT   default  "v=spf1 mx -all"
mail.example.com.  A     default  192.0.2.25
www.example.com.   A     300      192.0.2.1
www.example.com.   A     300      192.0.2.3
`
	want = strings.Replace(want, "SERIAL", fmt.Sprintf("%.0f", z1["serial"]), 1)
	if out != want {
		t.Fatalf("record list:\n%s\nwant:\n%s", out, want)
	}
	if out := dnsOK(t, "", with("record", "list", "--zone", "example.com", "--name-prefix", "www", "--type", "a")...); strings.Count(out, "\n") != 3 {
		t.Fatalf("record list www A:\n%s", out)
	}

	// get reads one set, named relative to the zone or fully, the SOA too.
	for _, args := range [][]string{with("record", "get", "example.com", "www", "a"), {"record", "get", "orgs/acme/projects/web/zones/example.com", "WWW.Example.com.", "A"}} {
		if out := dnsOK(t, "", args...); out != "NAME     www.example.com.\nTYPE     A\nTTL      300\nRECORDS  192.0.2.1\n         192.0.2.3\n" {
			t.Fatalf("record get %q:\n%s", args, out)
		}
	}
	var soa map[string]any
	dnsJSON(t, &soa, with("record", "get", "--zone", "example.com", "@", "SOA")...)
	if soa["name"] != "example.com." || soa["type"] != "SOA" || len(soa["records"].([]any)) != 1 {
		t.Fatalf("record get @ SOA: %v", soa)
	}
	if errs := dnsFails(t, with("record", "get", "example.com", "www", "AAAA")...); !strings.HasPrefix(errs,
		"photon: get www AAAA in orgs/acme/projects/web/zones/example.com: not found (or not visible to you): ") {
		t.Fatalf("record get of a missing set: %q", errs)
	}

	// An exact delete compares records and TTL; a mismatch changes nothing.
	if errs := dnsFails(t, with("record", "delete", "--zone", "example.com", "www", "A", "192.0.2.1", "192.0.2.3", "--ttl", "10m")...); !strings.HasPrefix(errs,
		"photon: delete www A from orgs/acme/projects/web/zones/example.com: refused: ") {
		t.Fatalf("delete with the wrong TTL: %q", errs)
	}
	dnsOK(t, "", with("record", "delete", "--zone", "example.com", "www", "A", "192.0.2.3", "192.0.2.1", "--ttl", "300")...)
	dnsOK(t, "", with("record", "delete", "--zone", "example.com", "mail", "A")...)
	if errs := dnsFails(t, with("record", "delete", "--zone", "example.com", "mail", "A")...); !strings.HasPrefix(errs,
		"photon: delete mail A from orgs/acme/projects/web/zones/example.com: not found (or not visible to you): ") {
		t.Fatalf("delete a deleted set: %q", errs)
	}
	if errs := dnsFails(t, with("record", "set", "--zone", "example.com", "www.example.com", "A", "192.0.2.1")...); !strings.HasPrefix(errs,
		"photon: set www.example.com A in orgs/acme/projects/web/zones/example.com: invalid request: ") {
		t.Fatalf("set with a doubled zone name: %q", errs)
	}

	// update changes only the flags given; a stale etag changes nothing.
	var z2 map[string]any
	dnsJSON(t, &z2, with("zone", "get", "example.com")...)
	etag := z2["etag"].(string)
	dnsJSON(t, &z2, with("zone", "update", "example.com", "--refresh", "2h", "--etag", etag)...)
	if errs := dnsFails(t, with("zone", "update", "example.com", "--retry", "60", "--etag", etag)...); !strings.Contains(errs, "conflict: ") {
		t.Fatalf("stale update: %q", errs)
	}
	dnsJSON(t, &z2, with("zone", "update", "example.com", "--enabled=false", "--label", "env=staging")...)
	if z2["refresh"] != float64(7200) || z2["defaultTtl"] != float64(3600) || z2["admin"] != "hostmaster.example.com." ||
		z2["enabled"] != false || z2["labels"].(map[string]any)["env"] != "staging" {
		t.Fatalf("after updates: %v", z2)
	}
	dnsOK(t, "", with("zone", "update", "example.com", "--enabled")...)

	// list, export and a round trip through delete and import.
	dnsOK(t, "", with("zone", "create", "example.org")...)
	out = dnsOK(t, "", with("zone", "list")...)
	if !regexp.MustCompile(`^DNS NAME +KIND +SERIAL +RECORD SETS +ENABLED +LABELS\nexample\.com\. +forward +\d+ +4 +yes +env=staging\nexample\.org\. +forward +\d+ +2 +yes +-\n$`).MatchString(out) {
		t.Fatalf("zone list:\n%s", out)
	}
	if out := dnsOK(t, "", with("zone", "list", "--filter", `dns_name = "example.o*"`)...); strings.Count(out, "\n") != 2 || !strings.Contains(out, "example.org.") {
		t.Fatalf("zone list --filter:\n%s", out)
	}
	records := dnsOK(t, "", with("record", "list", "--zone", "example.com")...)
	zoneFile := dnsOK(t, "", with("zone", "export", "example.com")...)
	if !strings.Contains(zoneFile, "$ORIGIN example.com.") || !strings.Contains(zoneFile, "v=spf1 mx -all") {
		t.Fatalf("export:\n%s", zoneFile)
	}
	file := filepath.Join(t.TempDir(), "example.com.zone")
	if err := os.WriteFile(file, []byte(zoneFile), 0o600); err != nil {
		t.Fatal(err)
	}
	if errs := dnsFails(t, with("zone", "delete", "example.com")...); !strings.HasPrefix(errs, "photon: delete zone orgs/acme/projects/web/zones/example.com: refused: ") {
		t.Fatalf("delete a zone with records: %q", errs)
	}
	if out := dnsOK(t, "", with("zone", "delete", "example.com", "--force")...); out != "Deleted orgs/acme/projects/web/zones/example.com.\n" {
		t.Fatalf("delete --force: %q", out)
	}
	if errs := dnsFails(t, with("zone", "get", "example.com")...); !strings.HasPrefix(errs, "photon: get zone orgs/acme/projects/web/zones/example.com: not found (or not visible to you): ") {
		t.Fatalf("get a deleted zone: %q", errs)
	}
	out = dnsOK(t, "", with("zone", "import", "--file", file)...)
	if !regexp.MustCompile(`(?m)^DNS NAME +example\.com\.$`).MatchString(out) || !regexp.MustCompile(`(?m)^RECORD SETS +4$`).MatchString(out) {
		t.Fatalf("import:\n%s", out)
	}
	// The same records; sets that followed the default TTL now have it
	// explicitly (see ExportZone).
	explicit := func(table string) string {
		var lines []string
		for _, l := range strings.Split(table, "\n") {
			lines = append(lines, strings.Join(strings.Fields(strings.Replace(l, " default ", " 3600 ", 1)), " "))
		}
		return strings.Join(lines, "\n")
	}
	if got := dnsOK(t, "", with("record", "list", "--zone", "example.com")...); explicit(got) != explicit(records) {
		t.Fatalf("records after export, delete and import:\n%s\nwant:\n%s", got, records)
	}
	// --replace swaps the whole content; without it the name is taken.
	replaced := strings.Replace(zoneFile, "v=spf1 mx -all", "v=spf1 -all", 1)
	if errs := dnsFails(t, with("zone", "import", "--file", file)...); !strings.Contains(errs, "already exists: ") {
		t.Fatalf("import over an existing zone: %q", errs)
	}
	dnsOK(t, replaced, with("zone", "import", "--file", "-", "--name", "example.com", "--replace")...)
	if out := dnsOK(t, "", with("record", "list", "--zone", "example.com", "--type", "TXT")...); !strings.Contains(out, `"v=spf1 -all"`) {
		t.Fatalf("TXT after import --replace:\n%s", out)
	}
	if errs := dnsFails(t, with("zone", "import", "--file", "-", "--name", "example.net")...); errs != "photon: zone file - is empty\n" {
		t.Fatalf("import of nothing: %q", errs)
	}
	bad := filepath.Join(t.TempDir(), "bad.zone")
	if err := os.WriteFile(bad, []byte("$ORIGIN example.net.\n@ 3600 IN SOA ns1.example.net. hostmaster.example.net. 1 3600 600 1209600 300\n@ IN NS ns1.example.net.\nwww IN BOGUS 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if errs := dnsFails(t, with("zone", "import", "--file", bad)...); !strings.HasPrefix(errs, "photon: import zone file "+bad+": invalid request: ") {
		t.Fatalf("import of a bad file: %q", errs)
	}
}

// TestDNSRealReverse: reverse zones from a network, addressed by it.
func TestDNSRealReverse(t *testing.T) {
	a := startAegis(t, aegisOptions{})
	d := startFlashDNS(t, a)
	cliEnvFor(t, a)
	t.Setenv(envFlashDNSURL, d.url)
	login(t)
	p := []string{"--org", "acme", "--project", "web"}
	with := func(args ...string) []string { return append(args, p...) }

	out := dnsOK(t, "", with("reverse", "create", "--cidr", "192.0.2.0/24", "--pattern", "{4}-{3}-{2}-{1}.hosts.example.com.")...)
	for _, re := range []string{`(?m)^NAME +orgs/acme/projects/web/zones/2\.0\.192\.in-addr\.arpa$`, `(?m)^KIND +reverse$`,
		`(?m)^NAMESERVERS +ns1\.photon\.test\.$`, `(?m)^CIDR +192\.0\.2\.0/24$`, `(?m)^PTR PATTERN +\{4\}-\{3\}-\{2\}-\{1\}\.hosts\.example\.com\.$`} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Fatalf("reverse create output does not match %s:\n%s", re, out)
		}
	}
	dnsOK(t, "", with("reverse", "create", "--cidr", "2001:db8::/32")...)
	dnsOK(t, "", with("zone", "create", "example.com")...)
	if errs := dnsFails(t, with("reverse", "create", "--cidr", "10.1.2.0/23")...); !strings.HasPrefix(errs, "photon: create reverse zone 10.1.2.0/23: invalid request: ") {
		t.Fatalf("reverse create /23: %q", errs)
	}
	out = dnsOK(t, "", with("reverse", "list")...)
	if !regexp.MustCompile(`^DNS NAME +CIDR +PTR PATTERN +SERIAL +RECORD SETS +ENABLED\n` +
		`2\.0\.192\.in-addr\.arpa\. +192\.0\.2\.0/24 +\{4\}-\{3\}-\{2\}-\{1\}\.hosts\.example\.com\. +\d+ +2 +yes\n` +
		`8\.b\.d\.0\.1\.0\.0\.2\.ip6\.arpa\. +2001:db8::/32 +- +\d+ +2 +yes\n$`).MatchString(out) {
		t.Fatalf("reverse list:\n%s", out)
	}

	// The zone is addressed by its network everywhere.
	dnsOK(t, "", with("record", "set", "--zone", "192.0.2.0/24", "1", "PTR", "gateway.example.com.")...)
	if out := dnsOK(t, "", with("record", "list", "--zone", "192.0.2.0/24", "--type", "PTR")...); out !=
		"NAME                     TYPE  TTL      DATA\n1.2.0.192.in-addr.arpa.  PTR   default  gateway.example.com.\n" {
		t.Fatalf("PTR list: %q", out)
	}
	var z map[string]any
	dnsJSON(t, &z, with("zone", "update", "192.0.2.0/24", "--ptr-pattern", "ip-{ip}.example.com.")...)
	if z["reverse"].(map[string]any)["ptrPattern"] != "ip-{ip}.example.com." {
		t.Fatalf("after update --ptr-pattern: %v", z)
	}
	if errs := dnsFails(t, with("reverse", "delete", "192.0.2.0/24")...); !strings.Contains(errs, "refused: ") {
		t.Fatalf("delete a reverse zone with a PTR: %q", errs)
	}
	dnsOK(t, "", with("reverse", "delete", "192.0.2.0/24", "--force")...)
	dnsOK(t, "", with("reverse", "delete", "8.b.d.0.1.0.0.2.ip6.arpa.")...)
	if out := dnsOK(t, "", with("reverse", "list")...); out != "DNS NAME  CIDR  PTR PATTERN  SERIAL  RECORD SETS  ENABLED\n" {
		t.Fatalf("reverse list after deletes: %q", out)
	}
}

// TestDNSRealAccess: what users without the rights see, through the real
// Aegis.
func TestDNSRealAccess(t *testing.T) {
	a := startAegis(t, aegisOptions{})
	d := startFlashDNS(t, a)
	// carol may read acme/web's DNS; bob is the admin of another org.
	a.createUser(t, "acme", "carol", "carol's password")
	a.bind(t, "orgs/acme/projects/web", "carol-dns", "orgs/acme/users/carol", "roles/flashdns.viewer")
	noErr[*aegisv1.Org](t, "create org zeta")(a.orgs().CreateOrg(a.ctx(t), &aegisv1.CreateOrgRequest{OrgId: "zeta"}))
	noErr[*aegisv1.Project](t, "create project zeta/web")(a.orgs().CreateProject(a.ctx(t), &aegisv1.CreateProjectRequest{Parent: "orgs/zeta", ProjectId: "web"}))
	a.createUser(t, "zeta", "bob", bobPassword)
	a.bind(t, "orgs/zeta", "bob-admin", "orgs/zeta/users/bob", "roles/OrgAdmin")
	cliEnvFor(t, a)
	t.Setenv(envFlashDNSURL, d.url)

	login(t)
	dnsOK(t, "", "zone", "create", "example.com", "--org", "acme", "--project", "web")

	loginAs(t, "carol@acme", "carol's password")
	dnsOK(t, "", "zone", "get", "example.com", "--org", "acme", "--project", "web")
	dnsOK(t, "", "record", "list", "--zone", "orgs/acme/projects/web/zones/example.com")
	if errs := dnsFails(t, "record", "set", "--zone", "orgs/acme/projects/web/zones/example.com", "www", "A", "192.0.2.1"); !strings.HasPrefix(errs,
		"photon: set www A in orgs/acme/projects/web/zones/example.com: permission denied: ") {
		t.Fatalf("viewer sets a record: %q", errs)
	}

	// Downscoped to the project, carol's session stands in for --org and
	// --project.
	if code, _, errs := photon(t, "carol's password\n", "login", "-u", "carol", "--org", "acme", "--project", "web", "--password-stdin"); code != 0 {
		t.Fatalf("login --project: %s", errs)
	}
	dnsOK(t, "", "zone", "get", "example.com")
	if out := dnsOK(t, "", "record", "get", "example.com", "@", "NS"); !strings.HasPrefix(out, "NAME     example.com.\nTYPE     NS\n") {
		t.Fatalf("record get with the session's project:\n%s", out)
	}

	loginAs(t, "bob@zeta", bobPassword)
	if errs := dnsFails(t, "zone", "get", "orgs/acme/projects/web/zones/example.com"); !strings.HasPrefix(errs,
		"photon: get zone orgs/acme/projects/web/zones/example.com: not found (or not visible to you): ") {
		t.Fatalf("other tenant gets the zone: %q", errs)
	}
	if errs := dnsFails(t, "zone", "create", "example.com", "--org", "zeta", "--project", "web"); !strings.HasPrefix(errs,
		"photon: create zone example.com: already exists: ") {
		t.Fatalf("other tenant creates the same name: %q", errs)
	}
	if out := dnsOK(t, "", "zone", "list", "--org", "zeta", "--project", "web"); out != "DNS NAME  KIND  SERIAL  RECORD SETS  ENABLED  LABELS\n" {
		t.Fatalf("other tenant lists: %q", out)
	}

	// Without a session the CLI says what to do.
	dnsOK(t, "", "zone", "list", "--org", "zeta", "--project", "web")
	if code, _, errs := photon(t, "", "logout"); code != 0 {
		t.Fatalf("logout: %s", errs)
	}
	if errs := dnsFails(t, "zone", "list", "--org", "zeta", "--project", "web"); !strings.Contains(errs, "not authenticated: missing bearer token (run photon login)") {
		t.Fatalf("after logout: %q", errs)
	}
}

// TestDNSRealDocExamples runs the record and reverse examples of
// docs/flashdns.md against the real API, so that they stay true.
func TestDNSRealDocExamples(t *testing.T) {
	a := startAegis(t, aegisOptions{})
	d := startFlashDNS(t, a)
	cliEnvFor(t, a)
	t.Setenv(envFlashDNSURL, d.url)
	login(t)
	p := []string{"--org", "acme", "--project", "web"}
	z := append([]string{"--zone", "example.com"}, p...)

	dnsOK(t, "", append([]string{"zone", "create", "example.com", "--nameserver", "ns1.example.net.", "--nameserver", "ns2.example.net.",
		"--admin", "hostmaster@example.com", "--default-ttl", "1h", "--refresh", "2h", "--label", "env=prod"}, p...)...)
	dkim := "v=DKIM1; k=rsa; p=" + strings.Repeat("MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA", 8)
	for _, args := range [][]string{
		{"www", "A", "192.0.2.1", "192.0.2.2", "--ttl", "300"},
		{"www", "AAAA", "2001:db8::1"},
		{"@", "MX", "10 mail.example.com.", "20 mail2.example.com."},
		{"@", "TXT", "v=spf1 mx -all"},
		{"sel._domainkey", "TXT", dkim},
		{"_sip._tcp", "SRV", "10 5 5060 sip.example.com."},
		{"@", "CAA", `0 issue "letsencrypt.org"`},
		{"blog", "CNAME", "example.github.io."},
		{"*.apps", "A", "192.0.2.10"},
		{"dev", "NS", "ns1.dev.example.net.", "ns2.dev.example.net."},
		{"@", "NS", "ns1.example.net.", "ns2.example.net."},
	} {
		dnsOK(t, "", append(append([]string{"record", "set"}, args...), z...)...)
	}
	var sets []map[string]any
	dnsJSON(t, &sets, append([]string{"record", "list", "--name-prefix", "sel.", "--type", "TXT"}, z...)...)
	if len(sets) != 1 || len(sets[0]["records"].([]any)) != 1 || strings.Count(sets[0]["records"].([]any)[0].(string), `" "`) != 1 {
		t.Fatalf("DKIM TXT: %v", sets)
	}
	dnsOK(t, "", append([]string{"record", "get", "example.com", "@", "MX"}, p...)...)
	dnsOK(t, "", append([]string{"record", "get", "www", "A", "-o", "json"}, z...)...)
	dnsOK(t, "", append([]string{"record", "delete", "www", "AAAA"}, z...)...)
	dnsOK(t, "", append([]string{"record", "delete", "www", "A", "192.0.2.1", "192.0.2.2", "--ttl", "300"}, z...)...)
	dnsOK(t, "", append([]string{"zone", "update", "example.com", "--default-ttl", "5m", "--negative-ttl", "60"}, p...)...)
	dnsOK(t, "", append([]string{"zone", "update", "example.com", "--nameserver", "ns1.example.net.,ns3.example.net."}, p...)...)
	dnsOK(t, "", append([]string{"zone", "update", "example.com", "--admin", ""}, p...)...)
	var zone map[string]any
	dnsJSON(t, &zone, append([]string{"zone", "get", "example.com"}, p...)...)
	if zone["admin"] != "hostmaster.example.com." || zone["defaultTtl"] != float64(300) {
		t.Fatalf("after updates: %v", zone)
	}

	for _, args := range [][]string{
		{"--cidr", "192.0.2.0/24", "--pattern", "{4}-{3}-{2}-{1}.hosts.example.com."},
		{"--cidr", "10.0.0.0/8", "--pattern", "ip-{ip}.internal.example.com.", "--nameserver", "ns1.example.net."},
		{"--cidr", "2001:db8:1::/48", "--pattern", "ip-{ip}.v6.example.com."},
		{"--cidr", "198.51.100.0/24"},
	} {
		dnsOK(t, "", append(append([]string{"reverse", "create"}, args...), p...)...)
	}
	dnsOK(t, "", append([]string{"record", "set", "--zone", "192.0.2.0/24", "1", "PTR", "gateway.example.com."}, p...)...)
	dnsOK(t, "", append([]string{"record", "get", "--zone", "192.0.2.0/24", "1", "PTR"}, p...)...)
	dnsOK(t, "", append([]string{"zone", "update", "192.0.2.0/24", "--ptr-pattern", "host-{4}.example.com."}, p...)...)
	dnsOK(t, "", append([]string{"zone", "update", "192.0.2.0/24", "--ptr-pattern", ""}, p...)...)
	if out := dnsOK(t, "", append([]string{"reverse", "list"}, p...)...); strings.Count(out, "\n") != 5 {
		t.Fatalf("reverse list:\n%s", out)
	}
	if out := dnsOK(t, "", append([]string{"reverse", "list", "--filter", "labels.site = fra1"}, p...)...); strings.Count(out, "\n") != 1 {
		t.Fatalf("reverse list --filter:\n%s", out)
	}
	if out := dnsOK(t, "", append([]string{"zone", "list", "--filter", `dns_name = "example*" AND labels.env = prod`, "--limit", "20"}, p...)...); strings.Count(out, "\n") != 2 {
		t.Fatalf("zone list --filter:\n%s", out)
	}
}

// TestDNSAuthNoneWithoutLogin is the lab setup: a FlashDNS with
// authorization off and no Aegis at all; photon dns works without a
// session.
func TestDNSAuthNoneWithoutLogin(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	fd, err := flashdns.Start(ctx, flashdns.Config{
		Auth: flashdns.AuthNone, ChainfireEndpoints: []string{startChainfire(t)},
		ListenGRPCURLs: []string{"http://127.0.0.1:0"}, ListenHTTPURLs: []string{},
		DNSAddrs: []string{"127.0.0.1:0"}, DNSSockets: 1, DefaultNameservers: []string{"ns1.example.net."},
		Logger: testLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fd.Close() })
	t.Setenv(envConfigDir, filepath.Join(t.TempDir(), "photon"))
	t.Setenv(envFlashDNSURL, "http://"+fd.GRPCAddr())

	dnsOK(t, "", "zone", "create", "example.org", "--org", "lab", "--project", "dns")
	dnsOK(t, "", "record", "set", "--zone", "example.org", "--org", "lab", "--project", "dns", "www", "A", "192.0.2.7")
	r, _, err := (&dns.Client{Timeout: 5 * time.Second}).Exchange(new(dns.Msg).SetQuestion("www.example.org.", dns.TypeA), fd.DNSAddr())
	if err != nil || len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "192.0.2.7" {
		t.Fatalf("www.example.org A: %v %v", r, err)
	}
}
