package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	flashdnsv1 "github.com/photoncloud/photoncloud/api/flashdns/v1"
	"github.com/photoncloud/photoncloud/internal/platform/testcerts"
)

// The tests in this file run `photon dns` against the fake FlashDNS of
// dns_fake_test.go: they check what the CLI sends for its arguments and
// flags, what it refuses before sending anything, and how it prints
// answers. What FlashDNS does with the requests is tested against the real
// server in dns_real_test.go.

const zoneName = "orgs/acme/projects/web/zones/example.com"

// wantReq fails the test unless got equals want.
func wantReq(t *testing.T, got, want proto.Message) {
	t.Helper()
	if !proto.Equal(got, want) {
		t.Fatalf("request:\n%s\nwant:\n%s", prototext.Format(got), prototext.Format(want))
	}
}

func sampleZone() *flashdnsv1.Zone {
	created := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	return &flashdnsv1.Zone{
		Name: zoneName, DnsName: "example.com.", PrimaryNs: "ns1.example.net.", Admin: "hostmaster.example.com.",
		Serial: 1764237600, Refresh: 3600, Retry: 600, Expire: 1209600, NegativeTtl: 300, DefaultTtl: 3600,
		Nameservers: []string{"ns1.example.net.", "ns2.example.net."}, Enabled: proto.Bool(true),
		Kind: flashdnsv1.Zone_KIND_FORWARD, Labels: map[string]string{"env": "prod"}, RecordSetCount: 2,
		CreateTime: timestamppb.New(created), UpdateTime: timestamppb.New(created.Add(time.Hour)), Etag: "etag-1",
	}
}

const sampleZoneTable = `NAME          orgs/acme/projects/web/zones/example.com
DNS NAME      example.com.
KIND          forward
ENABLED       yes
SERIAL        1764237600
RECORD SETS   2
NAMESERVERS   ns1.example.net.,ns2.example.net.
PRIMARY NS    ns1.example.net.
ADMIN         hostmaster.example.com.
REFRESH       3600
RETRY         600
EXPIRE        1209600
NEGATIVE TTL  300
DEFAULT TTL   3600
CIDR          -
PTR PATTERN   -
LABELS        env=prod
CREATED       2026-11-27T10:00:00Z
UPDATED       2026-11-27T11:00:00Z
ETAG          etag-1
`

func sampleReverse() *flashdnsv1.Zone {
	return &flashdnsv1.Zone{
		Name: "orgs/acme/projects/web/zones/2.0.192.in-addr.arpa", DnsName: "2.0.192.in-addr.arpa.",
		Serial: 7, Enabled: proto.Bool(false), Kind: flashdnsv1.Zone_KIND_REVERSE, RecordSetCount: 3,
		Reverse: &flashdnsv1.ReverseConfig{Cidr: "192.0.2.0/24", PtrPattern: "{4}-{3}-{2}-{1}.hosts.example.com."},
	}
}

func TestDNSFakeZoneCreate(t *testing.T) {
	f := startFakeFlashDNS(t, nil)
	fakeSessionEnv(t, f)
	f.answer("CreateZone", sampleZone(), nil)

	out := dnsOK(t, "", "zone", "create", "Example.COM.", "--org", "acme", "--project", "web",
		"--nameserver", "ns1.example.net.,ns2.example.net.", "--nameserver", "ns3.example.net.",
		"--primary-ns", "ns1.example.net.", "--admin", "hostmaster@example.com",
		"--refresh", "2h", "--retry", "900", "--expire", "2w", "--negative-ttl", "5m", "--default-ttl", "1d",
		"--label", "env=prod", "--enabled=false")
	if out != sampleZoneTable {
		t.Fatalf("create output:\n%s\nwant:\n%s", out, sampleZoneTable)
	}
	wantReq(t, f.only(t, "CreateZone"), &flashdnsv1.CreateZoneRequest{Parent: "orgs/acme/projects/web", Zone: &flashdnsv1.Zone{
		DnsName: "example.com", Nameservers: []string{"ns1.example.net.", "ns2.example.net.", "ns3.example.net."},
		PrimaryNs: "ns1.example.net.", Admin: "hostmaster@example.com",
		Refresh: 7200, Retry: 900, Expire: 1209600, NegativeTtl: 300, DefaultTtl: 86400,
		Labels: map[string]string{"env": "prod"}, Enabled: proto.Bool(false),
	}})

	// Unset fields stay unset: FlashDNS applies its defaults. A full
	// name carries the project.
	dnsOK(t, "", "zone", "create", zoneName)
	wantReq(t, f.only(t, "CreateZone"), &flashdnsv1.CreateZoneRequest{Parent: "orgs/acme/projects/web", Zone: &flashdnsv1.Zone{DnsName: "example.com"}})
	dnsOK(t, "", "zone", "create", "example.org", "--project", "orgs/acme/projects/api")
	wantReq(t, f.only(t, "CreateZone"), &flashdnsv1.CreateZoneRequest{Parent: "orgs/acme/projects/api", Zone: &flashdnsv1.Zone{DnsName: "example.org"}})

	// JSON is the API's.
	var got map[string]any
	if out := dnsOK(t, "", "zone", "create", "example.com", "--org", "acme", "--project", "web", "-o", "json"); json.Unmarshal([]byte(out), &got) != nil ||
		got["name"] != zoneName || got["kind"] != "KIND_FORWARD" || got["enabled"] != true || got["serial"] != float64(1764237600) {
		t.Fatalf("create -o json: %s", out)
	}
	f.take()

	// Usage errors are found before anything is sent.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"example.com"}, "--org and --project are required"},
		{[]string{"example.com", "--org", "acme"}, "--org and --project are required"},
		{[]string{"example.com", "--org", "acme", "--project", "a/b"}, `--project "a/b": want web`},
		{[]string{"example.com", "--org", "zeta", "--project", "orgs/acme/projects/web"}, `--org "zeta" differs from the org of --project`},
		{[]string{"orgs/acme/zones/example.com"}, `zone "orgs/acme/zones/example.com": want example.com`},
		{[]string{"192.0.2.0/24", "--org", "acme", "--project", "web"}, "192.0.2.0/24 is a network: create its reverse zone with photon dns reverse create --cidr 192.0.2.0/24"},
		{[]string{"example.com", "--org", "acme", "--project", "web", "--refresh", "1x"}, `invalid argument "1x" for "--refresh" flag`},
		{[]string{"example.com", "--org", "acme", "--project", "web", "--default-ttl", "2147483648"}, "more than 2147483647 seconds"},
		{[]string{"example.com", "--org", "acme", "--project", "web", "--label", "novalue"}, `--label "novalue": want key=value`},
		{[]string{"example.com", "--org", "acme", "--project", "web", "-o", "yaml"}, `-o "yaml": want table or json`},
	} {
		if errs := dnsFails(t, append([]string{"zone", "create"}, c.args...)...); !strings.Contains(errs, c.want) {
			t.Errorf("zone create %q: %q, want %q", c.args, errs, c.want)
		}
	}
	f.none(t)
}

func TestDNSFakeZoneGetListDelete(t *testing.T) {
	f := startFakeFlashDNS(t, nil)
	fakeSessionEnv(t, f)
	f.answer("GetZone", sampleZone(), nil)

	// Every way to name a zone gives its canonical resource name.
	for _, args := range [][]string{
		{"example.com", "--org", "acme", "--project", "web"},
		{"EXAMPLE.com.", "--org", "orgs/acme", "--project", "web"},
		{"example.com", "--project", "orgs/acme/projects/web"},
		{zoneName},
		{"orgs/acme/projects/web/zones/Example.Com."},
	} {
		if out := dnsOK(t, "", append([]string{"zone", "get"}, args...)...); out != sampleZoneTable {
			t.Fatalf("get %q:\n%s", args, out)
		}
		wantReq(t, f.only(t, "GetZone"), &flashdnsv1.GetZoneRequest{Name: zoneName})
	}
	// A network names its reverse zone.
	for net, id := range map[string]string{
		"192.0.2.0/24": "2.0.192.in-addr.arpa", "10.0.0.0/8": "10.in-addr.arpa", "2001:db8::/32": "8.b.d.0.1.0.0.2.ip6.arpa",
	} {
		dnsOK(t, "", "zone", "get", net, "--org", "acme", "--project", "web")
		wantReq(t, f.only(t, "GetZone"), &flashdnsv1.GetZoneRequest{Name: "orgs/acme/projects/web/zones/" + id})
	}
	if errs := dnsFails(t, "zone", "get", "10.0.0.0/12", "--org", "acme", "--project", "web"); !strings.Contains(errs, "photon: zone 10.0.0.0/12: ") || !strings.Contains(errs, "/8, /16 or /24") {
		t.Fatalf("get by a /12: %q", errs)
	}
	f.none(t)

	// The list follows page tokens with the same filter, --limit stops it.
	z2 := sampleZone()
	z2.Name, z2.DnsName, z2.Labels, z2.Serial, z2.RecordSetCount = "orgs/acme/projects/web/zones/example.org", "example.org.", nil, 5, 12
	pages := map[string]*flashdnsv1.ListZonesResponse{
		"":      {Zones: []*flashdnsv1.Zone{sampleZone()}, NextPageToken: "p2"},
		"p2":    {Zones: []*flashdnsv1.Zone{z2}, NextPageToken: "p3"},
		"p3":    {Zones: []*flashdnsv1.Zone{sampleReverse()}},
		"wrong": {},
	}
	f.answerFunc("ListZones", func(m proto.Message) (proto.Message, error) {
		return pages[m.(*flashdnsv1.ListZonesRequest).GetPageToken()], nil
	})
	out := dnsOK(t, "", "zone", "list", "--org", "acme", "--project", "web", "--filter", "labels.env = prod")
	want := `DNS NAME               KIND     SERIAL      RECORD SETS  ENABLED  LABELS
example.com.           forward  1764237600  2            yes      env=prod
example.org.           forward  5           12           yes      -
2.0.192.in-addr.arpa.  reverse  7           3            no       -
`
	if out != want {
		t.Fatalf("list:\n%s\nwant:\n%s", out, want)
	}
	calls := f.take()
	if len(calls) != 3 {
		t.Fatalf("%d calls", len(calls))
	}
	for i, tok := range []string{"", "p2", "p3"} {
		wantReq(t, calls[i].req, &flashdnsv1.ListZonesRequest{Parent: "orgs/acme/projects/web", Filter: "labels.env = prod", PageToken: tok})
	}
	out = dnsOK(t, "", "zone", "list", "--project", "orgs/acme/projects/web", "--limit", "1", "-o", "json")
	var zs []map[string]any
	if json.Unmarshal([]byte(out), &zs) != nil || len(zs) != 1 || zs[0]["dnsName"] != "example.com." {
		t.Fatalf("list --limit 1 -o json: %s", out)
	}
	wantReq(t, f.only(t, "ListZones"), &flashdnsv1.ListZonesRequest{Parent: "orgs/acme/projects/web", PageSize: 1})
	if errs := dnsFails(t, "zone", "list", "--org", "acme", "--project", "web", "--limit", "-1"); errs != "photon: --limit -1: must not be negative\n" {
		t.Fatalf("list --limit -1: %q", errs)
	}

	// Delete: --etag and --force are sent; JSON output is empty.
	if out := dnsOK(t, "", "zone", "delete", "example.com", "--org", "acme", "--project", "web", "--etag", "e1", "--force"); out != "Deleted "+zoneName+".\n" {
		t.Fatalf("delete: %q", out)
	}
	wantReq(t, f.only(t, "DeleteZone"), &flashdnsv1.DeleteZoneRequest{Name: zoneName, Etag: "e1", Force: true})
	if out := dnsOK(t, "", "zone", "delete", zoneName, "-o", "json"); out != "" {
		t.Fatalf("delete -o json: %q", out)
	}
	wantReq(t, f.only(t, "DeleteZone"), &flashdnsv1.DeleteZoneRequest{Name: zoneName})
}

func TestDNSFakeZoneUpdate(t *testing.T) {
	f := startFakeFlashDNS(t, nil)
	fakeSessionEnv(t, f)
	f.answer("UpdateZone", sampleZone(), nil)
	base := []string{"zone", "update", "example.com", "--org", "acme", "--project", "web"}

	// The mask is the flags given, in a fixed order.
	out := dnsOK(t, "", append(base, "--default-ttl", "5m", "--refresh", "7200", "--etag", "etag-0")...)
	if out != sampleZoneTable {
		t.Fatalf("update output:\n%s", out)
	}
	wantReq(t, f.only(t, "UpdateZone"), &flashdnsv1.UpdateZoneRequest{
		Zone:       &flashdnsv1.Zone{Name: zoneName, Refresh: 7200, DefaultTtl: 300, Etag: "etag-0"},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"refresh", "default_ttl"}},
	})
	// Empty values restore defaults: they are in the mask with zero values.
	dnsOK(t, "", append(base, "--nameserver", "", "--admin", "", "--label", "team=dns", "--enabled=false")...)
	wantReq(t, f.only(t, "UpdateZone"), &flashdnsv1.UpdateZoneRequest{
		Zone:       &flashdnsv1.Zone{Name: zoneName, Labels: map[string]string{"team": "dns"}, Enabled: proto.Bool(false)},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"nameservers", "admin", "enabled", "labels"}},
	})
	dnsOK(t, "", "zone", "update", "192.0.2.0/24", "--org", "acme", "--project", "web", "--ptr-pattern", "ip-{ip}.example.com.", "--enabled",
		"--nameserver", "ns1.example.net.", "--primary-ns", "ns1.example.net.", "--retry", "1h", "--expire", "1w", "--negative-ttl", "60")
	wantReq(t, f.only(t, "UpdateZone"), &flashdnsv1.UpdateZoneRequest{
		Zone: &flashdnsv1.Zone{Name: "orgs/acme/projects/web/zones/2.0.192.in-addr.arpa", Enabled: proto.Bool(true),
			Nameservers: []string{"ns1.example.net."}, PrimaryNs: "ns1.example.net.", Retry: 3600, Expire: 604800, NegativeTtl: 60,
			Reverse: &flashdnsv1.ReverseConfig{PtrPattern: "ip-{ip}.example.com."}},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"nameservers", "primary_ns", "retry", "expire", "negative_ttl", "enabled", "reverse.ptr_pattern"}},
	})

	if errs := dnsFails(t, base...); !strings.HasPrefix(errs, "photon: nothing to update: give at least one of --nameserver, --primary-ns, ") {
		t.Fatalf("update without flags: %q", errs)
	}
	if errs := dnsFails(t, append(base, "--etag", "e")...); !strings.HasPrefix(errs, "photon: nothing to update") {
		t.Fatalf("update with only --etag: %q", errs)
	}
	f.none(t)

	// An etag conflict says what to do.
	f.answer("UpdateZone", nil, status.Error(codes.Aborted, `etag mismatch: zone "example.com"`))
	if errs := dnsFails(t, append(base, "--retry", "60", "--etag", "old")...); errs !=
		"photon: update zone "+zoneName+": conflict: etag mismatch: zone \"example.com\" (it changed since it was read: get it again, or leave out --etag)\n" {
		t.Fatalf("stale update: %q", errs)
	}
}

func TestDNSFakeZoneImportExport(t *testing.T) {
	f := startFakeFlashDNS(t, nil)
	fakeSessionEnv(t, f)
	f.answer("ImportZone", sampleZone(), nil)
	const zoneFile = "$ORIGIN example.com.\n@ 3600 IN SOA ns1.example.net. hostmaster.example.com. 1 3600 600 1209600 300\n@ IN NS ns1.example.net.\nwww IN A 192.0.2.1\n"
	file := filepath.Join(t.TempDir(), "example.com.zone")
	if err := os.WriteFile(file, []byte(zoneFile), 0o600); err != nil {
		t.Fatal(err)
	}

	if out := dnsOK(t, "", "zone", "import", "--org", "acme", "--project", "web", "--file", file); out != sampleZoneTable {
		t.Fatalf("import output:\n%s", out)
	}
	wantReq(t, f.only(t, "ImportZone"), &flashdnsv1.ImportZoneRequest{Parent: "orgs/acme/projects/web", ZoneFile: zoneFile})
	dnsOK(t, zoneFile, "zone", "import", "--project", "orgs/acme/projects/web", "-f", "-", "--name", "Example.com.", "--replace", "--etag", "etag-1")
	wantReq(t, f.only(t, "ImportZone"), &flashdnsv1.ImportZoneRequest{Parent: "orgs/acme/projects/web", DnsName: "example.com",
		ZoneFile: zoneFile, ReplaceExisting: true, Etag: "etag-1"})
	dnsOK(t, "", "zone", "import", "--file", file, "--name", zoneName)
	wantReq(t, f.only(t, "ImportZone"), &flashdnsv1.ImportZoneRequest{Parent: "orgs/acme/projects/web", DnsName: "example.com", ZoneFile: zoneFile})

	big := filepath.Join(t.TempDir(), "big.zone")
	if err := os.WriteFile(big, make([]byte, 16<<20+1), 0o600); err != nil {
		t.Fatal(err)
	}
	latin1 := filepath.Join(t.TempDir(), "latin1.zone")
	if err := os.WriteFile(latin1, []byte("www IN TXT \"caf\xe9\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--org", "acme", "--project", "web"}, "photon: --file is required (- for stdin)\n"},
		{[]string{"--file", file}, "photon: --org and --project are required"},
		{[]string{"--org", "acme", "--project", "web", "--file", file, "--etag", "e"}, "photon: --etag applies only with --replace\n"},
		{[]string{"--org", "acme", "--project", "web", "--file", filepath.Join(t.TempDir(), "missing")}, "photon: read zone file: open "},
		{[]string{"--org", "acme", "--project", "web", "--file", big}, "photon: zone file " + big + " is larger than 16 MiB, the most FlashDNS imports\n"},
		{[]string{"--org", "acme", "--project", "web", "--file", latin1}, "photon: zone file " + latin1 + " is not UTF-8 text\n"},
		{[]string{"--org", "acme", "--project", "web", "--file", "-"}, "photon: zone file - is empty\n"},
	} {
		if errs := dnsFails(t, append([]string{"zone", "import"}, c.args...)...); !strings.HasPrefix(errs, c.want) {
			t.Errorf("import %q: %q, want %q", c.args, errs, c.want)
		}
	}
	f.none(t)
	f.answer("ImportZone", nil, status.Error(codes.InvalidArgument, "line 3: unknown type FOO"))
	if errs := dnsFails(t, "zone", "import", "--org", "acme", "--project", "web", "--file", file); errs != "photon: import zone file "+file+": invalid request: line 3: unknown type FOO\n" {
		t.Fatalf("import error: %q", errs)
	}
	if errs := dnsFails(t, "zone", "import", "--org", "acme", "--project", "web", "--file", file, "--name", "example.com"); errs != "photon: import zone example.com: invalid request: line 3: unknown type FOO\n" {
		t.Fatalf("import error: %q", errs)
	}
	f.take()

	// Export writes the zone file as it is, for a redirect to a file.
	f.answer("ExportZone", &flashdnsv1.ExportZoneResponse{ZoneFile: zoneFile, Serial: 9}, nil)
	if out := dnsOK(t, "", "zone", "export", "example.com", "--org", "acme", "--project", "web"); out != zoneFile {
		t.Fatalf("export: %q", out)
	}
	wantReq(t, f.only(t, "ExportZone"), &flashdnsv1.ExportZoneRequest{Name: zoneName})
	var got map[string]any
	if out := dnsOK(t, "", "zone", "export", zoneName, "-o", "json"); json.Unmarshal([]byte(out), &got) != nil || got["zoneFile"] != zoneFile || got["serial"] != float64(9) {
		t.Fatalf("export -o json: %s", out)
	}
}

func TestDNSFakeRecords(t *testing.T) {
	f := startFakeFlashDNS(t, nil)
	fakeSessionEnv(t, f)
	zone := []string{"--zone", "example.com", "--org", "acme", "--project", "web"}

	f.answer("ListRecordSets", &flashdnsv1.ListRecordSetsResponse{RecordSets: []*flashdnsv1.RecordSet{
		{Name: "example.com.", Type: "SOA", Ttl: 3600, Records: []string{"ns1.example.net. hostmaster.example.com. 1764237600 3600 600 1209600 300"}},
		{Name: "example.com.", Type: "NS", Records: []string{"ns1.example.net.", "ns2.example.net."}},
		{Name: "example.com.", Type: "TXT", Ttl: 300, Records: []string{`"v=spf1 -all"`}},
		{Name: "www.example.com.", Type: "A", Ttl: 300, Records: []string{"192.0.2.1", "192.0.2.2"}},
	}}, nil)
	out := dnsOK(t, "", append([]string{"record", "list"}, zone...)...)
	want := `NAME              TYPE  TTL      DATA
example.com.      SOA   3600     ns1.example.net. hostmaster.example.com. 1764237600 3600 600 1209600 300
example.com.      NS    default  ns1.example.net.
example.com.      NS    default  ns2.example.net.
example.com.      TXT   300      "v=spf1 -all"
www.example.com.  A     300      192.0.2.1
www.example.com.  A     300      192.0.2.2
`
	if out != want {
		t.Fatalf("record list:\n%s\nwant:\n%s", out, want)
	}
	wantReq(t, f.only(t, "ListRecordSets"), &flashdnsv1.ListRecordSetsRequest{Zone: zoneName})
	// JSON keeps the sets whole.
	out = dnsOK(t, "", append([]string{"record", "list", "-o", "json", "--name-prefix", "www", "--type", "a", "--limit", "2"}, zone...)...)
	var sets []map[string]any
	if json.Unmarshal([]byte(out), &sets) != nil || len(sets) != 2 || sets[1]["name"] != "example.com." || len(sets[1]["records"].([]any)) != 2 {
		t.Fatalf("record list -o json: %s", out)
	}
	wantReq(t, f.only(t, "ListRecordSets"), &flashdnsv1.ListRecordSetsRequest{Zone: zoneName, NamePrefix: "www", Type: "A", PageSize: 2})
	if errs := dnsFails(t, "record", "list", "--org", "acme", "--project", "web"); errs != "photon: --zone is required\n" {
		t.Fatalf("record list without --zone: %q", errs)
	}

	// set is one UPSERT.
	f.answer("ChangeRecordSets", &flashdnsv1.ChangeRecordSetsResponse{Zone: sampleZone(), Serial: 1764237601}, nil)
	out = dnsOK(t, "", append([]string{"record", "set", "www", "a", "192.0.2.1", "192.0.2.2", "--ttl", "5m", "--etag", "etag-1"}, zone...)...)
	if out != "Set www A in "+zoneName+": serial 1764237601.\n" {
		t.Fatalf("record set: %q", out)
	}
	wantReq(t, f.only(t, "ChangeRecordSets"), &flashdnsv1.ChangeRecordSetsRequest{Zone: zoneName, Etag: "etag-1", Changes: []*flashdnsv1.Change{
		{Action: flashdnsv1.Change_ACTION_UPSERT, RecordSet: &flashdnsv1.RecordSet{Name: "www", Type: "A", Ttl: 300, Records: []string{"192.0.2.1", "192.0.2.2"}}}}})
	// TXT text is quoted and split for the user; quoted records pass.
	long := strings.Repeat("k", 300)
	dnsOK(t, "", append([]string{"record", "set", "@", "TXT", `v=spf1 include:"x" -all`, `"already" "quoted"`, long}, zone...)...)
	wantReq(t, f.only(t, "ChangeRecordSets"), &flashdnsv1.ChangeRecordSetsRequest{Zone: zoneName, Changes: []*flashdnsv1.Change{
		{Action: flashdnsv1.Change_ACTION_UPSERT, RecordSet: &flashdnsv1.RecordSet{Name: "@", Type: "TXT", Records: []string{
			`"v=spf1 include:\"x\" -all"`, `"already" "quoted"`, `"` + long[:255] + `" "` + long[255:] + `"`}}}}})
	// JSON is the response.
	var got map[string]any
	if out := dnsOK(t, "", append([]string{"record", "set", "mail", "MX", "10 mx.example.com.", "-o", "json"}, zone...)...); json.Unmarshal([]byte(out), &got) != nil || got["serial"] != float64(1764237601) {
		t.Fatalf("record set -o json: %s", out)
	}
	f.take()

	// delete: the whole set, or exactly the records given with their TTL.
	if out := dnsOK(t, "", append([]string{"record", "delete", "www", "A"}, zone...)...); out != "Deleted www A from "+zoneName+": serial 1764237601.\n" {
		t.Fatalf("record delete: %q", out)
	}
	wantReq(t, f.only(t, "ChangeRecordSets"), &flashdnsv1.ChangeRecordSetsRequest{Zone: zoneName, Changes: []*flashdnsv1.Change{
		{Action: flashdnsv1.Change_ACTION_DELETE, RecordSet: &flashdnsv1.RecordSet{Name: "www", Type: "A"}}}})
	dnsOK(t, "", "record", "delete", "www.example.com.", "A", "192.0.2.1", "--ttl", "0", "--zone", zoneName, "--etag", "etag-2")
	wantReq(t, f.only(t, "ChangeRecordSets"), &flashdnsv1.ChangeRecordSetsRequest{Zone: zoneName, Etag: "etag-2", Changes: []*flashdnsv1.Change{
		{Action: flashdnsv1.Change_ACTION_DELETE, RecordSet: &flashdnsv1.RecordSet{Name: "www.example.com.", Type: "A", Records: []string{"192.0.2.1"}}}}})
	f.answer("ChangeRecordSets", nil, status.Error(codes.FailedPrecondition, `change 0 (www.example.com. A): the records differ from the set's`))
	if errs := dnsFails(t, append([]string{"record", "delete", "www", "A", "192.0.2.9", "--ttl", "300"}, zone...)...); errs !=
		"photon: delete www A from "+zoneName+": refused: change 0 (www.example.com. A): the records differ from the set's\n" {
		t.Fatalf("record delete mismatch: %q", errs)
	}
	f.take()

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"record", "set", "www", "A"}, "photon: requires at least 3 arg(s), only received 2\n"},
		{[]string{"record", "set", "@", "MX", "10", "mail.example.com."}, `photon: MX record "10": give each record as one argument, quoted: '10 mail.example.com.'` + "\n"},
		{[]string{"record", "set", "_sip._tcp", "SRV", "sip.example.com."}, `photon: SRV record "sip.example.com.": give each record as one argument`},
		{[]string{"record", "set", "@", "SOA", "x y 1 2 3 4 5"}, "photon: the SOA record is managed by the zone: use photon dns zone update\n"},
		{[]string{"record", "set", "", "A", "192.0.2.1"}, "photon: empty owner name: use @ for the zone apex\n"},
		{[]string{"record", "set", "www", "A", " "}, "photon: empty A record\n"},
		{[]string{"record", "set", "www", "A", "192.0.2.1", "--ttl", "-1"}, `photon: invalid argument "-1" for "--ttl" flag`},
		{[]string{"record", "delete", "www", "A", "192.0.2.1"}, "photon: deleting exact records compares the TTL too: give --ttl (0 for a set that follows the zone's default)\n"},
		{[]string{"record", "delete", "www", "A", "--ttl", "300"}, "photon: --ttl applies only with the records to delete\n"},
		{[]string{"record", "delete", "www"}, "photon: requires at least 2 arg(s), only received 1\n"},
	} {
		if errs := dnsFails(t, append(c.args, zone...)...); !strings.HasPrefix(errs, c.want) {
			t.Errorf("%q: %q, want %q", c.args, errs, c.want)
		}
	}
	f.none(t)
}

// TestDNSFakeRecordGet: record get takes the zone as an argument or as
// --zone, and prints one line per record.
func TestDNSFakeRecordGet(t *testing.T) {
	f := startFakeFlashDNS(t, nil)
	fakeSessionEnv(t, f)
	f.answer("GetRecordSet", &flashdnsv1.RecordSet{Name: "example.com.", Type: "MX", Records: []string{"10 mail.example.com.", "20 mail2.example.com."}}, nil)

	out := dnsOK(t, "", "record", "get", "example.com", "@", "mx", "--org", "acme", "--project", "web")
	want := `NAME     example.com.
TYPE     MX
TTL      default
RECORDS  10 mail.example.com.
         20 mail2.example.com.
`
	if out != want {
		t.Fatalf("record get:\n%s\nwant:\n%s", out, want)
	}
	wantReq(t, f.only(t, "GetRecordSet"), &flashdnsv1.GetRecordSetRequest{Zone: zoneName, Name: "@", Type: "MX"})
	for _, args := range [][]string{
		{zoneName, "@", "MX"},
		{"--zone", "example.com", "--org", "acme", "--project", "web", "@", "MX"},
		{"@", "MX", "--zone", zoneName},
	} {
		if out := dnsOK(t, "", append([]string{"record", "get"}, args...)...); out != want {
			t.Fatalf("record get %q:\n%s", args, out)
		}
		wantReq(t, f.only(t, "GetRecordSet"), &flashdnsv1.GetRecordSetRequest{Zone: zoneName, Name: "@", Type: "MX"})
	}
	// A reverse zone by its network; JSON is the API's.
	f.answer("GetRecordSet", &flashdnsv1.RecordSet{Name: "1.2.0.192.in-addr.arpa.", Type: "PTR", Ttl: 300, Records: []string{"gateway.example.com."}}, nil)
	var got map[string]any
	if out := dnsOK(t, "", "record", "get", "192.0.2.0/24", "1", "PTR", "--org", "acme", "--project", "web", "-o", "json"); json.Unmarshal([]byte(out), &got) != nil ||
		got["name"] != "1.2.0.192.in-addr.arpa." || got["ttl"] != float64(300) || len(got["records"].([]any)) != 1 {
		t.Fatalf("record get -o json: %s", out)
	}
	wantReq(t, f.only(t, "GetRecordSet"), &flashdnsv1.GetRecordSetRequest{Zone: "orgs/acme/projects/web/zones/2.0.192.in-addr.arpa", Name: "1", Type: "PTR"})
	// A set without records (none is served that way) still says so.
	f.answer("GetRecordSet", &flashdnsv1.RecordSet{Name: "www.example.com.", Type: "A", Ttl: 60}, nil)
	if out := dnsOK(t, "", "record", "get", zoneName, "www", "A"); out != "NAME     www.example.com.\nTYPE     A\nTTL      60\nRECORDS  -\n" {
		t.Fatalf("record get without records: %q", out)
	}
	f.take()

	f.answer("GetRecordSet", nil, status.Error(codes.NotFound, `record set "www.example.com." AAAA`))
	if errs := dnsFails(t, "record", "get", zoneName, "www", "aaaa"); errs !=
		"photon: get www AAAA in "+zoneName+": not found (or not visible to you): record set \"www.example.com.\" AAAA\n" {
		t.Fatalf("record get of a missing set: %q", errs)
	}
	f.take()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"www", "A"}, "photon: give the zone: get ZONE NAME TYPE, or --zone\n"},
		{[]string{"example.com", "www", "A", "--zone", "example.com"}, "photon: give the zone as an argument or as --zone, not both\n"},
		{[]string{"example.com", "www", "A"}, "photon: --org and --project are required"},
		{[]string{zoneName, "", "A"}, "photon: empty owner name: use @ for the zone apex\n"},
		{[]string{"www"}, "photon: accepts between 2 and 3 arg(s), received 1\n"},
		{[]string{zoneName, "www", "A", "x"}, "photon: accepts between 2 and 3 arg(s), received 4\n"},
	} {
		if errs := dnsFails(t, append([]string{"record", "get"}, c.args...)...); !strings.HasPrefix(errs, c.want) {
			t.Errorf("record get %q: %q, want %q", c.args, errs, c.want)
		}
	}
	f.none(t)
}

// TestDNSFakeSessionScope: a session downscoped to a project stands in
// for --org and --project; flags given win.
func TestDNSFakeSessionScope(t *testing.T) {
	f := startFakeFlashDNS(t, nil)
	dir := fakeSessionEnv(t, f)
	setSessionProject(t, dir, "orgs/acme/projects/web")

	dnsOK(t, "", "zone", "get", "example.com")
	wantReq(t, f.only(t, "GetZone"), &flashdnsv1.GetZoneRequest{Name: zoneName})
	dnsOK(t, "", "record", "list", "--zone", "example.com")
	wantReq(t, f.only(t, "ListRecordSets"), &flashdnsv1.ListRecordSetsRequest{Zone: zoneName})
	dnsOK(t, "", "record", "get", "example.com", "www", "A")
	wantReq(t, f.only(t, "GetRecordSet"), &flashdnsv1.GetRecordSetRequest{Zone: zoneName, Name: "www", Type: "A"})
	dnsOK(t, "", "zone", "create", "example.org")
	wantReq(t, f.only(t, "CreateZone"), &flashdnsv1.CreateZoneRequest{Parent: "orgs/acme/projects/web", Zone: &flashdnsv1.Zone{DnsName: "example.org"}})
	for args, parent := range map[string]string{
		"":                                 "orgs/acme/projects/web",
		"--project api":                    "orgs/acme/projects/api", // the session's org
		"--org zeta --project api":         "orgs/zeta/projects/api",
		"--project orgs/zeta/projects/api": "orgs/zeta/projects/api",
		"--org orgs/zeta --project orgs/zeta/projects/api": "orgs/zeta/projects/api",
	} {
		dnsOK(t, "", append([]string{"zone", "list"}, strings.Fields(args)...)...)
		wantReq(t, f.only(t, "ListZones"), &flashdnsv1.ListZonesRequest{Parent: parent})
	}
	// --org alone is not the session's project in another org, nor, to
	// keep one rule, in the session's org.
	for _, org := range []string{"zeta", "acme"} {
		if errs := dnsFails(t, "zone", "list", "--org", org); !strings.HasPrefix(errs, "photon: --org and --project are required") {
			t.Errorf("--org %s alone: %q", org, errs)
		}
	}
	f.none(t)
}

// setSessionProject records the stored session of the Aegis that
// fakeSessionEnv set up as downscoped to project, as photon login
// --project does.
func setSessionProject(t *testing.T, dir, project string) {
	t.Helper()
	err := (&credStore{dir: dir}).update(func(c *credentialsFile) (bool, error) {
		c.Profiles[c.Current].Project = project
		return true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestDNSFakeReverse(t *testing.T) {
	f := startFakeFlashDNS(t, nil)
	fakeSessionEnv(t, f)
	rev := sampleReverse()
	f.answer("CreateZone", rev, nil)

	out := dnsOK(t, "", "reverse", "create", "--org", "acme", "--project", "web", "--cidr", "192.0.2.0/24",
		"--pattern", "{4}-{3}-{2}-{1}.hosts.example.com.", "--nameserver", "ns1.example.net.", "--default-ttl", "1h")
	for _, line := range []string{"DNS NAME      2.0.192.in-addr.arpa.\n", "KIND          reverse\n", "ENABLED       no\n",
		"CIDR          192.0.2.0/24\n", "PTR PATTERN   {4}-{3}-{2}-{1}.hosts.example.com.\n"} {
		if !strings.Contains(out, line) {
			t.Fatalf("reverse create output lacks %q:\n%s", line, out)
		}
	}
	wantReq(t, f.only(t, "CreateZone"), &flashdnsv1.CreateZoneRequest{Parent: "orgs/acme/projects/web", Zone: &flashdnsv1.Zone{
		Nameservers: []string{"ns1.example.net."}, DefaultTtl: 3600,
		Reverse: &flashdnsv1.ReverseConfig{Cidr: "192.0.2.0/24", PtrPattern: "{4}-{3}-{2}-{1}.hosts.example.com."}}})
	dnsOK(t, "", "reverse", "create", "--project", "orgs/acme/projects/web", "--cidr", "2001:db8::/48")
	wantReq(t, f.only(t, "CreateZone"), &flashdnsv1.CreateZoneRequest{Parent: "orgs/acme/projects/web", Zone: &flashdnsv1.Zone{
		Reverse: &flashdnsv1.ReverseConfig{Cidr: "2001:db8::/48"}}})
	if errs := dnsFails(t, "reverse", "create", "--org", "acme", "--project", "web"); errs != "photon: --cidr is required\n" {
		t.Fatalf("reverse create without --cidr: %q", errs)
	}
	if errs := dnsFails(t, "reverse", "create", "--org", "acme", "--project", "web", "--cidr", "192.0.2.1"); !strings.HasPrefix(errs, `photon: --cidr "192.0.2.1": want a network`) {
		t.Fatalf("reverse create --cidr without length: %q", errs)
	}
	f.none(t)

	// list is ListZones of kind reverse, with the user's filter added.
	v6 := &flashdnsv1.Zone{DnsName: "8.b.d.0.1.0.0.2.ip6.arpa.", Kind: flashdnsv1.Zone_KIND_REVERSE, Serial: 3, RecordSetCount: 2,
		Enabled: proto.Bool(true), Reverse: &flashdnsv1.ReverseConfig{Cidr: "2001:db8::/32"}}
	f.answer("ListZones", &flashdnsv1.ListZonesResponse{Zones: []*flashdnsv1.Zone{rev, v6}}, nil)
	out = dnsOK(t, "", "reverse", "list", "--org", "acme", "--project", "web")
	want := `DNS NAME                   CIDR           PTR PATTERN                         SERIAL  RECORD SETS  ENABLED
2.0.192.in-addr.arpa.      192.0.2.0/24   {4}-{3}-{2}-{1}.hosts.example.com.  7       3            no
8.b.d.0.1.0.0.2.ip6.arpa.  2001:db8::/32  -                                   3       2            yes
`
	if out != want {
		t.Fatalf("reverse list:\n%s\nwant:\n%s", out, want)
	}
	wantReq(t, f.only(t, "ListZones"), &flashdnsv1.ListZonesRequest{Parent: "orgs/acme/projects/web", Filter: "kind = reverse"})
	dnsOK(t, "", "reverse", "list", "--org", "acme", "--project", "web", "--filter", "labels.env = prod")
	wantReq(t, f.only(t, "ListZones"), &flashdnsv1.ListZonesRequest{Parent: "orgs/acme/projects/web", Filter: "kind = reverse AND labels.env = prod"})

	// delete by network or name.
	if out := dnsOK(t, "", "reverse", "delete", "192.0.2.0/24", "--org", "acme", "--project", "web", "--force"); out != "Deleted orgs/acme/projects/web/zones/2.0.192.in-addr.arpa.\n" {
		t.Fatalf("reverse delete: %q", out)
	}
	wantReq(t, f.only(t, "DeleteZone"), &flashdnsv1.DeleteZoneRequest{Name: "orgs/acme/projects/web/zones/2.0.192.in-addr.arpa", Force: true})
	dnsOK(t, "", "reverse", "delete", "2.0.192.in-addr.arpa.", "--org", "acme", "--project", "web")
	wantReq(t, f.only(t, "DeleteZone"), &flashdnsv1.DeleteZoneRequest{Name: "orgs/acme/projects/web/zones/2.0.192.in-addr.arpa"})
}

// TestDNSFakeErrors: what a user sees when FlashDNS or the session fails.
func TestDNSFakeErrors(t *testing.T) {
	f := startFakeFlashDNS(t, nil)
	dir := fakeSessionEnv(t, f)
	get := []string{"zone", "get", "example.com", "--org", "acme", "--project", "web"}

	for _, c := range []struct {
		err  error
		want string
	}{
		{status.Error(codes.NotFound, `zone "orgs/acme/projects/web/zones/example.com"`),
			"not found (or not visible to you): zone \"orgs/acme/projects/web/zones/example.com\"\n"},
		{status.Error(codes.PermissionDenied, "flashdns:zones:get"), "permission denied: flashdns:zones:get\n"},
		{status.Error(codes.Unauthenticated, "token expired"), "not authenticated: token expired (run photon login)\n"},
		{status.Error(codes.Unavailable, "chainfire unreachable"), "FlashDNS at " + f.url + " is unavailable: chainfire unreachable\n"},
		{status.Error(codes.Unimplemented, "unknown service"), f.url + " does not offer this call (unknown service); is --flashdns-url a FlashDNS of this version?\n"},
		{status.Error(codes.ResourceExhausted, "1000 zones"), "limit reached: 1000 zones\n"},
	} {
		f.answer("GetZone", nil, c.err)
		if errs := dnsFails(t, get...); errs != "photon: get zone "+zoneName+": "+c.want {
			t.Errorf("%v: %q, want %q", c.err, errs, c.want)
		}
	}
	f.take()

	// --flashdns-url wins over the environment; the wrong server is
	// reported as such.
	if errs := dnsFails(t, append(get, "--flashdns-url", "http://127.0.0.1:1")...); !strings.HasPrefix(errs, "photon: get zone "+zoneName+": FlashDNS at http://127.0.0.1:1 is unavailable: ") {
		t.Fatalf("no server: %q", errs)
	}
	f.none(t)
	for _, c := range []struct {
		url, want string
	}{
		{"127.0.0.1:7020", `photon: --flashdns-url "127.0.0.1:7020": want http://host:port or https://host:port` + "\n"},
		{"grpc://127.0.0.1:7020", `photon: --flashdns-url "grpc://127.0.0.1:7020": want http://host:port or https://host:port` + "\n"},
		{"http://127.0.0.1:7020/v1", `photon: --flashdns-url "http://127.0.0.1:7020/v1" must not have credentials, a path, a query or a fragment` + "\n"},
		// Checked before the token goes out: no network traffic to it.
		{"http://dns.example.com:7020", "photon: refusing plaintext gRPC to FlashDNS at dns.example.com:7020: use an https:// --flashdns-url or --insecure\n"},
	} {
		if errs := dnsFails(t, append(get, "--flashdns-url", c.url)...); errs != c.want {
			t.Errorf("--flashdns-url %s: %q, want %q", c.url, errs, c.want)
		}
	}
	t.Setenv(envFlashDNSURL, "http://[::1")
	if errs := dnsFails(t, get...); !strings.HasPrefix(errs, `photon: --flashdns-url "http://[::1": want`) {
		t.Fatalf("bad $%s: %q", envFlashDNSURL, errs)
	}
	t.Setenv(envFlashDNSURL, f.url)

	// Without any session the call goes without a token (a lab's FlashDNS
	// with --auth none needs none); a FlashDNS that wants one refuses it,
	// and the CLI says to log in.
	if err := os.Remove(filepath.Join(dir, credentialsFileName)); err != nil {
		t.Fatal(err)
	}
	if errs := dnsFails(t, get...); errs != "photon: get zone orgs/acme/projects/web/zones/example.com: not authenticated: fake: no valid token (run photon login)\n" {
		t.Fatalf("not logged in: %q", errs)
	}
	if calls := f.take(); len(calls) != 1 || calls[0].auth != "" {
		t.Fatalf("without a session: calls %+v, want one without authorization", calls)
	}
}

// TestDNSFakeTLS: https:// FlashDNS URLs verify the server against
// --flashdns-cacert, else the Aegis CA.
func TestDNSFakeTLS(t *testing.T) {
	certs := testcerts.New(t)
	f := startFakeFlashDNS(t, &certs)
	fakeSessionEnv(t, f)
	f.answer("GetZone", sampleZone(), nil)
	get := []string{"zone", "get", zoneName}

	dnsOK(t, "", append(get, "--flashdns-cacert", certs.CAFile)...)
	f.only(t, "GetZone")
	t.Setenv(envFlashDNSCACert, certs.CAFile)
	dnsOK(t, "", get...)
	f.only(t, "GetZone")
	t.Setenv(envFlashDNSCACert, "")
	// The Aegis CA (here of an Aegis that is never contacted: the stored
	// token is valid) serves FlashDNS too.
	dnsOK(t, "", append(get, "--cacert", certs.CAFile)...)
	f.only(t, "GetZone")

	// Without the CA the certificate is not trusted, and no call arrives.
	if errs := dnsFails(t, get...); !strings.HasPrefix(errs, "photon: get zone "+zoneName+": FlashDNS at "+f.url+" is unavailable: ") ||
		!strings.Contains(errs, "certificate") {
		t.Fatalf("unknown CA: %q", errs)
	}
	f.none(t)
	if errs := dnsFails(t, append(get, "--flashdns-cacert", filepath.Join(certs.Dir, "nope.pem"))...); !strings.HasPrefix(errs, "photon: read --flashdns-cacert: open ") {
		t.Fatalf("missing --flashdns-cacert: %q", errs)
	}
	if errs := dnsFails(t, append(get, "--flashdns-cacert", certs.CAFile, "--flashdns-url", "http://127.0.0.1:7020")...); errs !=
		"photon: --flashdns-cacert needs an https:// --flashdns-url, not http://127.0.0.1:7020\n" {
		t.Fatalf("--flashdns-cacert with http://: %q", errs)
	}
}

// TestDNSTargetPlaintext: --insecure (or its variable) allows plaintext
// beyond loopback, as for Aegis; https:// needs no permission.
func TestDNSTargetPlaintext(t *testing.T) {
	for _, c := range []struct {
		url      string
		insecure bool
		endpoint string
		ok       bool
	}{
		{"http://127.0.0.1:7020", false, "127.0.0.1:7020", true},
		{"http://localhost", false, "localhost:80", true},
		{"http://[::1]:7020/", false, "[::1]:7020", true},
		{"http://10.0.0.5:7020", false, "10.0.0.5:7020", false},
		{"http://10.0.0.5:7020", true, "10.0.0.5:7020", true},
		{"https://dns.example.com", false, "dns.example.com:443", true},
		{"HTTPS://DNS.example.com:8443", false, "DNS.example.com:8443", true},
	} {
		o := &dnsOptions{env: cliEnv{getenv: func(string) string { return "" }}, url: c.url}
		cmd := newDNSCommand(o.env)
		o.flags = cmd.PersistentFlags()
		d, err := o.flashDNSTarget()
		if err != nil {
			t.Fatalf("%s: %v", c.url, err)
		}
		if d.endpoint != c.endpoint {
			t.Errorf("%s: endpoint %s, want %s", c.url, d.endpoint, c.endpoint)
		}
		_, err = d.finish(target{insecure: c.insecure, cacert: "aegis-ca.pem"})
		if (err == nil) != c.ok {
			t.Errorf("%s insecure=%v: %v", c.url, c.insecure, err)
		}
	}
}

func TestDNSParseSeconds(t *testing.T) {
	for in, want := range map[string]uint32{
		"0": 0, "300": 300, "5m": 300, "1h30m": 5400, "1H": 3600, "1d": 86400, "2w": 1209600, "1w1d1h1m1s": 694861,
		"1h30": 3630, "2147483647": 2147483647, "24855d3h14m7s": 2147483647,
	} {
		if got, err := parseSeconds(in); err != nil || got != want {
			t.Errorf("parseSeconds(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1", "m", "5x", "1.5h", "2147483648", "24855d3h14m8s", "99999999999w", " 5"} {
		if got, err := parseSeconds(in); err == nil {
			t.Errorf("parseSeconds(%q) = %d, want an error", in, got)
		}
	}
}

func TestDNSQuoteTXT(t *testing.T) {
	for in, want := range map[string]string{
		"word":                   `"word"`,
		"v=spf1 -all":            `"v=spf1 -all"`,
		`say "hi" \o/`:           `"say \"hi\" \\o/"`,
		"tab\there":              `"tab\009here"`,
		`"quoted" "strings"`:     `"quoted" "strings"`,
		` "leading space"`:       ` "leading space"`,
		strings.Repeat("a", 255): `"` + strings.Repeat("a", 255) + `"`,
		strings.Repeat("a", 511): fmt.Sprintf(`"%s" "%s" "a"`, strings.Repeat("a", 255), strings.Repeat("a", 255)),
	} {
		if got := quoteTXT(in); got != want {
			t.Errorf("quoteTXT(%q) = %q, want %q", in, got, want)
		}
	}
}
