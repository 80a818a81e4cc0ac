package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/photoncloud/photoncloud/internal/aegis/token"
)

func TestSigningKeysAcrossReplicas(t *testing.T) {
	addr := startChainfire(t)
	a := openStore(t, addr, nil)
	b := openStore(t, addr, nil)
	ctx := ctxT(t)

	kek, err := token.NewKEK(make([]byte, token.KEKSize))
	if err != nil {
		t.Fatal(err)
	}
	cfg := token.Config{Issuer: "https://aegis.test"}
	ringA, err := token.OpenKeyring(ctx, a.KeyStore(), cfg, kek)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.WaitRevision(ctx, a.Revision()); err != nil {
		t.Fatal(err)
	}
	ringB, err := token.OpenKeyring(ctx, b.KeyStore(), cfg, kek)
	if err != nil {
		t.Fatal(err)
	}
	if ringA.ActiveKID() == "" || ringA.ActiveKID() != ringB.ActiveKID() {
		t.Fatalf("replicas disagree on the active key: %q vs %q", ringA.ActiveKID(), ringB.ActiveKID())
	}
	reloaded := make(chan struct{}, 8)
	b.OnSigningKeysChanged(func() {
		if err := ringB.Reload(context.Background()); err != nil {
			t.Errorf("reload: %v", err)
		}
		reloaded <- struct{}{}
	})

	// A token of A verifies on B; a revocation through A is enforced on B.
	issA, err := token.NewIssuer(ringA, cfg, a.Revocations())
	if err != nil {
		t.Fatal(err)
	}
	verB, err := token.NewVerifier(ringB, cfg, b.Revocations())
	if err != nil {
		t.Fatal(err)
	}
	raw, claims, err := issA.Issue(token.Grant{Subject: alice, Kind: token.KindUser, Org: "acme"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := verB.Verify(raw); err != nil {
		t.Fatal(err)
	}
	if err := a.RevokeToken(ctx, claims.ID, claims.ExpiresAt); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Second, "revoked token rejected by the other replica", func() bool {
		_, err := verB.Verify(raw)
		return errors.Is(err, token.ErrRevoked)
	})

	// Rotation on A reaches B through the callback.
	newKID, err := ringA.Rotate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-reloaded:
	case <-time.After(5 * time.Second):
		t.Fatal("signing-key callback not called")
	}
	eventually(t, time.Second, "rotation seen by the other replica", func() bool { return ringB.ActiveKID() == newKID })

	// A stale revision conflicts.
	if _, err := a.KeyStore().StoreKeys(ctx, nil, 1); !errors.Is(err, token.ErrKeyConflict) {
		t.Fatalf("stale StoreKeys: %v", err)
	}
}

func TestRefreshRotationRace(t *testing.T) {
	addr := startChainfire(t)
	a := openStore(t, addr, nil)
	b := openStore(t, addr, nil)
	ctx := ctxT(t)

	refA, err := token.NewRefresher(a.RefreshStore(), a.Revocations(), token.RefreshConfig{})
	if err != nil {
		t.Fatal(err)
	}
	refB, err := token.NewRefresher(b.RefreshStore(), b.Revocations(), token.RefreshConfig{})
	if err != nil {
		t.Fatal(err)
	}
	g := token.Grant{Subject: alice, Kind: token.KindUser, Org: "acme"}
	for round := range 5 {
		tok, rec, err := refA.Start(ctx, g)
		if err != nil {
			t.Fatal(err)
		}
		// Two replicas rotate the same token at once: exactly one wins,
		// the other is treated as reuse and kills the family.
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, r := range []*token.Refresher{refA, refB} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _, errs[i] = r.Rotate(ctx, tok)
			}()
		}
		wg.Wait()
		ok := 0
		for _, err := range errs {
			switch {
			case err == nil:
				ok++
			case errors.Is(err, token.ErrRefreshReused), errors.Is(err, token.ErrRefreshInvalid):
			default:
				t.Fatalf("round %d: unexpected error %v", round, err)
			}
		}
		if ok != 1 {
			t.Fatalf("round %d: %d rotations succeeded (%v)", round, ok, errs)
		}
		if _, err := a.RefreshStore().GetRefresh(ctx, rec.FamilyID, rec.Hash); !errors.Is(err, token.ErrRefreshNotFound) {
			t.Fatalf("round %d: family survived reuse: %v", round, err)
		}
	}

	// The store level: the loser of RotateRefresh gets ErrRefreshUsed.
	tok, rec, err := refA.Start(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	_ = tok
	rs := a.RefreshStore()
	var wg sync.WaitGroup
	errs := make([]error, 6)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			next := *rec
			next.Hash = fmt.Sprintf("next-%d", i)
			next.UsedAt = time.Time{}
			errs[i] = rs.RotateRefresh(ctx, rec.FamilyID, rec.Hash, time.Now(), &next)
		}()
	}
	wg.Wait()
	wins := 0
	for _, err := range errs {
		if err == nil {
			wins++
		} else if !errors.Is(err, token.ErrRefreshUsed) {
			t.Fatalf("RotateRefresh: %v", err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d concurrent RotateRefresh calls won", wins)
	}
	got, err := rs.GetRefresh(ctx, rec.FamilyID, rec.Hash)
	if err != nil || got.UsedAt.IsZero() {
		t.Fatalf("old record after rotation: %v, %v", got, err)
	}
	if err := rs.RevokeFamily(ctx, rec.FamilyID); err != nil {
		t.Fatal(err)
	}
	if _, err := rs.GetRefresh(ctx, rec.FamilyID, rec.Hash); !errors.Is(err, token.ErrRefreshNotFound) {
		t.Fatalf("after RevokeFamily: %v", err)
	}
	if _, err := rs.GetRefresh(ctx, "../x", "y"); !errors.Is(err, token.ErrRefreshNotFound) {
		t.Fatalf("malformed id: %v", err)
	}
}
