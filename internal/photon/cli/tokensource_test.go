package cli

import (
	"context"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	flashdnsv1 "github.com/photoncloud/photoncloud/api/flashdns/v1"
	aegisclient "github.com/photoncloud/photoncloud/client/aegis"
)

// TestCallTokenFailureWording: when a call cannot get a token from the
// session (here: the stored session is gone by the time the call needs
// one), the user reads the CLI's words for it, not the ones client/aegis's
// TokenCredentials use for services; and a token the server refuses stays
// the server's refusal.
func TestCallTokenFailureWording(t *testing.T) {
	f := startFakeFlashDNS(t, nil)
	const aegisURL = "http://127.0.0.1:7011"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	call := func(src *storedTokenSource) error {
		t.Helper()
		d := dnsTarget{url: f.url, endpoint: strings.TrimPrefix(f.url, "http://")}
		cc, err := d.dial(aegisclient.TokenCredentials(src, false))
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		c := &dnsCall{ctx: ctx, conn: cc, src: src, url: f.url}
		_, err = c.zones().GetZone(ctx, &flashdnsv1.GetZoneRequest{Name: zoneName})
		return c.rpc("get zone "+zoneName, err)
	}

	// An expired token and no stored session to refresh it from.
	gone := &storedTokenSource{store: &credStore{dir: t.TempDir()}, key: aegisURL, now: time.Now,
		tok: &oauth2.Token{AccessToken: fakeToken, Expiry: time.Now().Add(-time.Minute)}}
	err := call(gone)
	if want := "get zone " + zoneName + ": not authenticated: not logged in to " + aegisURL + " (run photon login)"; err == nil || err.Error() != want {
		t.Fatalf("call without a token: %v\nwant: %s", err, want)
	}
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("code %v", status.Code(err))
	}
	f.none(t)
	// The Aegis side words the same failure the same way.
	s := &session{target: target{endpoint: "127.0.0.1:7010"}, src: gone}
	if got := s.rpc("list orgs", status.Error(codes.Unauthenticated, "get an access token: x")); !strings.HasSuffix(got.Error(),
		": not authenticated: not logged in to "+aegisURL+" (run photon login)") {
		t.Fatalf("session.rpc: %v", got)
	}

	// A token that is there but refused: the server's message.
	refused := &storedTokenSource{now: time.Now, tok: &oauth2.Token{AccessToken: "stale", Expiry: time.Now().Add(time.Hour)}}
	if err := call(refused); err == nil || err.Error() != "get zone "+zoneName+": not authenticated: fake: no valid token (run photon login)" {
		t.Fatalf("refused token: %v", err)
	}
	if calls := f.take(); len(calls) != 1 || calls[0].auth != "Bearer stale" {
		t.Fatalf("calls %+v", calls)
	}
	// Without a session at all (FlashDNS with --auth none), errors pass.
	var none *storedTokenSource
	if err := none.callErr(status.Error(codes.Unauthenticated, "x")); status.Convert(err).Message() != "x" {
		t.Fatalf("nil source: %v", err)
	}
}
