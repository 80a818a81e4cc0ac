package dnsdiff

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	flashdnsv1 "github.com/photoncloud/photoncloud/api/flashdns/v1"
	"github.com/photoncloud/photoncloud/internal/chainfire"
	"github.com/photoncloud/photoncloud/internal/chainfire/chainfiretest"
	"github.com/photoncloud/photoncloud/internal/flashdns"
)

// diffProject is the project the differential zones are imported into.
// All of them go into one project: sub.example.com is a zone nested in
// example.com, which FlashDNS allows only within a project.
const diffProject = "orgs/dnsdiff/projects/rules"

// startFlashDNS serves zones with FlashDNS and returns where it answers.
//
// This is the seam between the differential test and how FlashDNS gets
// its zones. It runs FlashDNS as an installation does, in-process: a
// Chainfire, a FlashDNS replica on it (authorization off: the API's
// authorization is tested elsewhere), and every zone file imported
// through the flashdns.v1 API (ImportZone), in the order given (a parent
// before its child). So the answers compared with NSD come from the zone
// as the API stored it in Chainfire and the store's watch turned it into
// snapshots, not from a zone file read straight into the query path.
func startFlashDNS(t *testing.T, zones []Zone) Target {
	t.Helper()
	// Errors only: Chainfire and FlashDNS warn, as they should, that this
	// setup has neither TLS nor authorization.
	lg := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	fd, err := flashdns.Start(ctx, flashdns.Config{
		ListenGRPCURLs:     []string{"http://127.0.0.1:0"},
		DNSAddrs:           []string{"127.0.0.1:0"},
		DNSSockets:         1,
		ChainfireEndpoints: []string{startChainfire(t, lg)},
		Auth:               flashdns.AuthNone,
		Logger:             lg,
		Registry:           prometheus.NewRegistry(),
	})
	if err != nil {
		t.Fatalf("start flashdns: %v", err)
	}
	t.Cleanup(func() {
		if err := fd.Close(); err != nil {
			t.Errorf("stop flashdns: %v", err)
		}
	})

	cc, err := grpc.NewClient(fd.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(17<<20)))
	if err != nil {
		t.Fatalf("dial flashdns: %v", err)
	}
	defer cc.Close()
	api := flashdnsv1.NewZoneServiceClient(cc)
	for _, z := range zones {
		text, err := os.ReadFile(z.File)
		if err != nil {
			t.Fatal(err)
		}
		got, err := api.ImportZone(ctx, &flashdnsv1.ImportZoneRequest{Parent: diffProject, DnsName: z.Origin, ZoneFile: string(text)})
		if err != nil {
			t.Fatalf("import %s through the API: %v", z.File, err)
		}
		// An acknowledged import is served by this replica from then on
		// (its own write reached its snapshots before the answer), so the
		// queries need no wait; check the serial it serves anyway.
		if s := fd.Store().Table().Get(z.Origin); s == nil || s.Serial() != got.GetSerial() {
			t.Fatalf("import of %s acknowledged with serial %d, but the replica serves %v", z.Origin, got.GetSerial(), s)
		}
	}
	return Target{Name: "flashdns", UDP: fd.DNSAddr(), TCP: fd.DNSAddr()}
}

// startChainfire runs a one-member Chainfire in-process for the test and
// returns its client address.
func startChainfire(t *testing.T, lg *slog.Logger) string {
	t.Helper()
	return chainfiretest.Start(t, func(c *chainfire.Config) { c.Name, c.Logger = "dnsdiff", lg }).ClientAddr()
}
