package token

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

type refreshFixture struct {
	clk   *fakeClock
	store *MemRefreshStore
	revs  *RevocationList
	r     *Refresher
}

func newRefreshFixture(t *testing.T) *refreshFixture {
	t.Helper()
	f := &refreshFixture{clk: &fakeClock{now: t0}, store: NewMemRefreshStore()}
	f.revs = NewRevocationList(f.clk.Now)
	var err error
	f.r, err = NewRefresher(f.store, f.revs, RefreshConfig{IdleTTL: 24 * time.Hour, MaxLifetime: 72 * time.Hour, Now: f.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestRefreshRotation(t *testing.T) {
	f := newRefreshFixture(t)
	ctx := context.Background()
	g := Grant{Subject: "u-alice", Kind: KindUser, Org: "acme", Project: "web", ClientID: "photon-cli"}
	tok1, rec1, err := f.r.Start(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tok1, "rt1.") || len(tok1) != 4+22+1+43 {
		t.Fatalf("token shape %q", tok1)
	}
	f.clk.Advance(time.Hour)
	tok2, rec2, err := f.r.Rotate(ctx, tok1)
	if err != nil {
		t.Fatal(err)
	}
	if tok2 == tok1 || rec2.FamilyID != rec1.FamilyID || rec2.Grant.Project != "web" || rec2.Grant.ClientID != "photon-cli" {
		t.Fatalf("rotated record %+v", rec2)
	}
	if !rec2.AuthTime.Equal(t0) || !rec2.IssuedAt.Equal(t0.Add(time.Hour)) || !rec2.ExpiresAt.Equal(t0.Add(25*time.Hour)) {
		t.Fatalf("times %+v", rec2)
	}
	tok3, _, err := f.r.Rotate(ctx, tok2)
	if err != nil {
		t.Fatal(err)
	}

	// The store never saw a token, only hashes.
	f.store.mu.Lock()
	blob, _ := json.Marshal(f.store.families)
	f.store.mu.Unlock()
	for _, tok := range []string{tok1, tok2, tok3} {
		secret := tok[strings.LastIndexByte(tok, '.')+1:]
		if strings.Contains(string(blob), secret) {
			t.Fatal("refresh secret stored in clear")
		}
	}
	if f.store.Len() != 3 {
		t.Fatalf("store holds %d records", f.store.Len())
	}
}

// TestRefreshReuseRevokesFamily: the BCP scenario. An attacker steals tok1
// and the client keeps using its tokens; whoever presents tok1 second
// reveals the theft and the whole family, including the newest token, dies.
func TestRefreshReuseRevokesFamily(t *testing.T) {
	f := newRefreshFixture(t)
	ctx := context.Background()
	tok1, _, _ := f.r.Start(ctx, alice)
	other, _, _ := f.r.Start(ctx, alice) // another login of the same user
	tok2, _, err := f.r.Rotate(ctx, tok1)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.r.Rotate(ctx, tok1); !errors.Is(err, ErrRefreshReused) || !errors.Is(err, ErrRefreshInvalid) {
		t.Fatalf("reuse: %v", err)
	}
	if _, _, err := f.r.Rotate(ctx, tok2); !errors.Is(err, ErrRefreshInvalid) {
		t.Fatalf("successor after reuse: %v", err)
	}
	// Other families of the same user are unaffected.
	if _, _, err := f.r.Rotate(ctx, other); err != nil {
		t.Fatalf("other family: %v", err)
	}
}

// TestRefreshConcurrentRotation: two parties present the same token at
// once. Exactly one gets a successor; the other triggers reuse detection,
// so the winner's successor is revoked as well.
func TestRefreshConcurrentRotation(t *testing.T) {
	f := newRefreshFixture(t)
	ctx := context.Background()
	for range 20 {
		tok, _, _ := f.r.Start(ctx, alice)
		var wg sync.WaitGroup
		results := make([]error, 8)
		next := make([]string, 8)
		for i := range results {
			wg.Go(func() { next[i], _, results[i] = f.r.Rotate(ctx, tok) })
		}
		wg.Wait()
		ok, reused := 0, 0
		var winner string
		for i, err := range results {
			switch {
			case err == nil:
				ok++
				winner = next[i]
			case errors.Is(err, ErrRefreshReused), errors.Is(err, ErrRefreshInvalid):
				reused++
			default:
				t.Fatal(err)
			}
		}
		if ok != 1 || reused != 7 {
			t.Fatalf("%d succeeded, %d rejected; want 1 and 7", ok, reused)
		}
		if _, _, err := f.r.Rotate(ctx, winner); !errors.Is(err, ErrRefreshInvalid) {
			t.Fatalf("winner's successor survived reuse: %v", err)
		}
	}
}

func TestRefreshExpiry(t *testing.T) {
	f := newRefreshFixture(t)
	ctx := context.Background()

	// Idle: unused for IdleTTL.
	tok, _, _ := f.r.Start(ctx, alice)
	f.clk.Advance(24 * time.Hour)
	if _, _, err := f.r.Rotate(ctx, tok); !errors.Is(err, ErrRefreshExpired) {
		t.Fatalf("idle: %v", err)
	}

	// Absolute: refreshed daily, the family still ends after MaxLifetime.
	tok, _, _ = f.r.Start(ctx, alice)
	var err error
	for day := 1; day <= 2; day++ {
		f.clk.Advance(23 * time.Hour)
		if tok, _, err = f.r.Rotate(ctx, tok); err != nil {
			t.Fatalf("day %d: %v", day, err)
		}
	}
	f.clk.Advance(23 * time.Hour) // 69h: the token's expiry is capped at 72h
	tok, rec, err := f.r.Rotate(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	if !rec.ExpiresAt.Equal(rec.FamilyExpiresAt) {
		t.Fatalf("token expiry %v not capped at family expiry %v", rec.ExpiresAt, rec.FamilyExpiresAt)
	}
	f.clk.Advance(3 * time.Hour)
	if _, _, err := f.r.Rotate(ctx, tok); !errors.Is(err, ErrRefreshExpired) {
		t.Fatalf("past max lifetime: %v", err)
	}
	if n := f.store.Sweep(f.clk.Now()); n != 2 {
		t.Fatalf("Sweep removed %d families", n)
	}
}

func TestRefreshPrincipalRevoked(t *testing.T) {
	f := newRefreshFixture(t)
	ctx := context.Background()
	tok, _, _ := f.r.Start(ctx, alice)
	f.clk.Advance(time.Minute)
	f.revs.RevokePrincipal(alice.Subject, f.clk.Now())
	if _, _, err := f.r.Rotate(ctx, tok); !errors.Is(err, ErrRefreshRevoked) {
		t.Fatalf("after sign-out everywhere: %v", err)
	}
	// A login right after the sign-out starts a family that works, even in
	// the same instant's second: refresh records keep full precision.
	f.clk.Advance(time.Millisecond)
	tok, _, _ = f.r.Start(ctx, alice)
	if _, _, err := f.r.Rotate(ctx, tok); err != nil {
		t.Fatalf("new login: %v", err)
	}
}

func TestRefreshRevoke(t *testing.T) {
	f := newRefreshFixture(t)
	ctx := context.Background()
	tok1, _, _ := f.r.Start(ctx, alice)
	tok2, _, _ := f.r.Rotate(ctx, tok1)
	if err := f.r.Revoke(ctx, tok2); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.r.Rotate(ctx, tok2); !errors.Is(err, ErrRefreshInvalid) {
		t.Fatalf("after logout: %v", err)
	}
	if f.store.Len() != 0 {
		t.Fatal("family left behind")
	}
	// Idempotent and silent about garbage.
	for _, tok := range []string{tok2, "", "garbage", "rt1.x.y"} {
		if err := f.r.Revoke(ctx, tok); err != nil {
			t.Fatalf("Revoke(%q): %v", tok, err)
		}
	}
}

func TestRefreshMalformed(t *testing.T) {
	f := newRefreshFixture(t)
	ctx := context.Background()
	tok, _, _ := f.r.Start(ctx, alice)
	fam := strings.Split(tok, ".")[1]
	for _, bad := range []string{
		"", "rt1.", "rt1..", "rt2." + tok[4:], tok + "x", tok[:len(tok)-1],
		"rt1." + fam + "." + strings.Repeat("A", 43),       // right shape, wrong secret
		"rt1." + fam + "." + strings.Repeat("A", 42) + "B", // non-canonical base64
		strings.Repeat("a", 200),
	} {
		if _, _, err := f.r.Rotate(ctx, bad); !errors.Is(err, ErrRefreshInvalid) {
			t.Errorf("Rotate(%q): %v", bad, err)
		}
	}
	// None of that harmed the real token.
	if _, _, err := f.r.Rotate(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.r.Start(ctx, Grant{Subject: "x"}); !errors.Is(err, ErrInvalidGrant) {
		t.Fatalf("Start(bad grant): %v", err)
	}
}

// failingStore fails every call, to check errors surface wrapped and are not
// mistaken for an invalid token.
type failingStore struct{ *MemRefreshStore }

var errStoreDown = errors.New("chainfire unavailable")

func (*failingStore) GetRefresh(context.Context, string, string) (*RefreshRecord, error) {
	return nil, errStoreDown
}

func (*failingStore) CreateRefresh(context.Context, *RefreshRecord) error { return errStoreDown }

func TestRefreshStoreErrors(t *testing.T) {
	r, _ := NewRefresher(&failingStore{NewMemRefreshStore()}, nil, RefreshConfig{})
	ctx := context.Background()
	if _, _, err := r.Start(ctx, alice); !errors.Is(err, errStoreDown) {
		t.Fatalf("Start: %v", err)
	}
	tok := "rt1." + randomString(familyBytes) + "." + randomString(secretBytes)
	_, _, err := r.Rotate(ctx, tok)
	if !errors.Is(err, errStoreDown) || errors.Is(err, ErrRefreshInvalid) {
		t.Fatalf("Rotate: %v", err)
	}
}
