package store

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	flashdnsv1 "github.com/photoncloud/photoncloud/api/flashdns/v1"
	"github.com/photoncloud/photoncloud/internal/chainfire/chainfiretest"
)

// TestWriteWithoutChainfireIsUnavailable stops Chainfire under an open
// store: a write with no deadline of its own must come back UNAVAILABLE
// after the store's request timeout rather than wait for ever, and reads
// keep being answered from memory.
func TestWriteWithoutChainfireIsUnavailable(t *testing.T) {
	cf := chainfiretest.Start(t, nil)
	s := openStore(t, cf.ClientAddr(), func(o *Options) { o.RequestTimeout = 500 * time.Millisecond })
	z := createZone(t, s, "orgs/acme/projects/web", "example.com")
	if err := cf.Close(); err != nil {
		t.Fatal(err)
	}

	_, err := s.ChangeRecordSets(context.Background(), z.GetName(), []*flashdnsv1.Change{upsert(rs("www", "A", 300, "192.0.2.1"))}, "")
	wantErr(t, err, ErrUnavailable)
	if c := GRPCCode(err); c != codes.Unavailable {
		t.Fatalf("code %v, want Unavailable", c)
	}
	if got, err := s.GetZone(context.Background(), z.GetName()); err != nil || got.GetSerial() != z.GetSerial() {
		t.Fatalf("read from memory without chainfire: %v, %v", got, err)
	}
}
