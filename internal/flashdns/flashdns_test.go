package flashdns_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	flashdnsv1 "github.com/photoncloud/photoncloud/api/flashdns/v1"
	"github.com/photoncloud/photoncloud/internal/chainfire/chainfiretest"
	"github.com/photoncloud/photoncloud/internal/flashdns"
	"github.com/photoncloud/photoncloud/internal/platform"
	"github.com/photoncloud/photoncloud/internal/platform/testcerts"
)

// TestGatewayOverTLS serves the API with nothing but a certificate and its
// key, as an operator's first TLS setup has it: no trusted CA file. The
// JSON gateway, which calls the replica's own gRPC listener, must work.
func TestGatewayOverTLS(t *testing.T) {
	certs := testcerts.New(t)
	fd := startFlashDNS(t, flashdns.Config{
		ListenGRPCURLs: []string{"https://127.0.0.1:0"}, ListenHTTPURLs: []string{"https://127.0.0.1:0"},
		TLS: platform.TLSFiles{CertFile: certs.ServerCertFile, KeyFile: certs.ServerKeyFile},
	})

	ca, err := os.ReadFile(certs.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	for path, want := range map[string]string{
		"/readyz":                          "ok",
		"/v1/orgs/acme/projects/web/zones": "{}",
	} {
		resp, err := hc.Get("https://" + fd.HTTPAddr() + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != want {
			t.Errorf("GET %s = %d %q, want 200 %q", path, resp.StatusCode, body, want)
		}
	}
}

// startFlashDNS starts a single-member Chainfire and a FlashDNS replica on
// it, without authorization, on loopback ports; cfg sets the rest.
func startFlashDNS(t *testing.T, cfg flashdns.Config) *flashdns.Server {
	t.Helper()
	cf := chainfiretest.Start(t, nil)
	cfg.DNSAddrs, cfg.ChainfireEndpoints, cfg.Auth = []string{"127.0.0.1:0"}, []string{cf.ClientAddr()}, flashdns.AuthNone
	if len(cfg.ListenGRPCURLs) == 0 {
		cfg.ListenGRPCURLs = []string{"http://127.0.0.1:0"}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	fd, err := flashdns.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fd.Close() })
	return fd
}

// TestRequestSizeLimits holds every method but ImportZone to 4 MiB, as
// zones.proto says, while ImportZone takes zone files up to 16 MiB.
func TestRequestSizeLimits(t *testing.T) {
	fd := startFlashDNS(t, flashdns.Config{})
	conn, err := grpc.NewClient(fd.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(32<<20)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	zones := flashdnsv1.NewZoneServiceClient(conn)
	records := flashdnsv1.NewRecordSetServiceClient(conn)
	if _, err := zones.CreateZone(ctx, &flashdnsv1.CreateZoneRequest{Parent: "orgs/acme/projects/web",
		Zone: &flashdnsv1.Zone{DnsName: "example.com.", Nameservers: []string{"ns1.example.net."}}}); err != nil {
		t.Fatal(err)
	}

	big := strings.Repeat("x", 5<<20)
	_, err = records.ChangeRecordSets(ctx, &flashdnsv1.ChangeRecordSetsRequest{Zone: "orgs/acme/projects/web/zones/example.com",
		Changes: []*flashdnsv1.Change{{Action: flashdnsv1.Change_ACTION_UPSERT,
			RecordSet: &flashdnsv1.RecordSet{Name: "www", Type: "TXT", Records: []string{big}}}}})
	if status.Code(err) != codes.ResourceExhausted {
		t.Errorf("ChangeRecordSets of 5 MiB: %v, want RESOURCE_EXHAUSTED", err)
	}

	// A 5 MiB zone file passes the size check and is imported.
	var zf strings.Builder
	zf.WriteString("$ORIGIN big.example.\n@ 3600 IN SOA ns1.example.net. hostmaster.example.net. 1 7200 3600 1209600 300\n@ 3600 IN NS ns1.example.net.\n")
	for i := 0; zf.Len() < 5<<20; i++ {
		fmt.Fprintf(&zf, "host%d 300 IN TXT \"%s\"\n", i, strings.Repeat("t", 250))
	}
	z, err := zones.ImportZone(ctx, &flashdnsv1.ImportZoneRequest{Parent: "orgs/acme/projects/web", ZoneFile: zf.String()})
	if err != nil {
		t.Fatalf("ImportZone of a %d-byte zone file: %v", zf.Len(), err)
	}
	if z.GetDnsName() != "big.example." {
		t.Errorf("imported zone %q, want big.example.", z.GetDnsName())
	}
}
