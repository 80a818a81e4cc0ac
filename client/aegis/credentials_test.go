package aegis

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestServiceAccountTokenCredentials runs the client credentials grant
// against a token endpoint that checks the key and counts requests: the
// token is fetched once and reused while valid, and a rejected key is
// UNAUTHENTICATED. (The real Aegis endpoint is exercised by the services'
// end-to-end tests.)
func TestServiceAccountTokenCredentials(t *testing.T) {
	var requests atomic.Int32
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		id, secret, ok := r.BasicAuth()
		if err := r.ParseForm(); err != nil || r.Form.Get("grant_type") != "client_credentials" || !ok || id != "key-1" || secret != "s3cret" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":"invalid_client"}`))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "tok-1", "token_type": "Bearer", "expires_in": 900})
	}))
	defer ts.Close()
	ctx := context.Background()

	src, err := ServiceAccount{TokenURL: ts.URL, ClientID: "key-1", ClientSecret: "s3cret\n"}.TokenSource(ctx)
	if err != nil {
		t.Fatal(err)
	}
	creds := TokenCredentials(src, false)
	for range 3 {
		md, err := creds.GetRequestMetadata(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if md["authorization"] != "Bearer tok-1" {
			t.Fatalf("metadata %v", md)
		}
	}
	if n := requests.Load(); n != 1 {
		t.Fatalf("%d token requests for three calls, want 1", n)
	}
	if creds.RequireTransportSecurity() || !TokenCredentials(src, true).RequireTransportSecurity() {
		t.Fatal("RequireTransportSecurity does not follow requireTLS")
	}

	bad, err := ServiceAccount{TokenURL: ts.URL, ClientID: "key-1", ClientSecret: "wrong"}.TokenSource(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := TokenCredentials(bad, false).GetRequestMetadata(ctx); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("rejected key: %v, want Unauthenticated", err)
	}
	for _, sa := range []ServiceAccount{{ClientID: "a", ClientSecret: "b"}, {TokenURL: ts.URL, ClientID: "a"}} {
		if _, err := sa.TokenSource(ctx); err == nil {
			t.Fatalf("%+v accepted", sa)
		}
	}
}
