package token

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestOpenKeyringBootstrap(t *testing.T) {
	f := newFixture(t)
	keys := f.ring.Keys()
	if len(keys) != 2 || keys[0].State != Active || keys[1].State != Staged {
		t.Fatalf("bootstrap keys %+v", keys)
	}
	if f.ring.ActiveKID() != keys[0].KID || f.ring.Revision() != 1 {
		t.Fatalf("active %q rev %d", f.ring.ActiveKID(), f.ring.Revision())
	}
	// A second replica on the same store loads the same keys.
	g := newFixtureSharing(t, f, 0)
	if g.ring.ActiveKID() != f.ring.ActiveKID() {
		t.Fatal("replicas disagree on the active key")
	}
}

func TestOpenKeyringRace(t *testing.T) {
	store := &MemKeyStore{}
	cfg := Config{Issuer: testIssuer}
	kek := testKEK(t, 1)
	var wg sync.WaitGroup
	kids := make([]string, 8)
	for i := range kids {
		wg.Go(func() {
			r, err := OpenKeyring(context.Background(), store, cfg, kek)
			if err != nil {
				t.Error(err)
				return
			}
			kids[i] = r.ActiveKID()
		})
	}
	wg.Wait()
	for _, k := range kids {
		if k != kids[0] {
			t.Fatalf("concurrent bootstrap produced different key sets: %v", kids)
		}
	}
}

// TestRotationNeverBreaksValidTokens walks a key through staged → active →
// retired → removed, checking at every step that every unexpired token
// still verifies and that the JWKS publishes exactly the verifying keys.
func TestRotationNeverBreaksValidTokens(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	kidA, kidB := f.ring.ActiveKID(), f.ring.Keys()[1].KID
	if got := jwksKIDs(t, f.ring); !slices.Equal(got, []string{kidA, kidB}) {
		t.Fatalf("JWKS before rotation %v: the staged key must be published before it signs", got)
	}
	tokA, _ := f.issue(t, alice)

	f.clk.Advance(5 * time.Minute)
	kid, err := f.ring.Rotate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if kid != kidB || f.ring.ActiveKID() != kidB {
		t.Fatalf("rotation activated %q, want the staged %q", kid, kidB)
	}
	keys := f.ring.Keys()
	kidC := keys[1].KID
	if keys[0].KID != kidB || keys[1].State != Staged || keys[2].KID != kidA || keys[2].State != Retired {
		t.Fatalf("after rotation %+v", keys)
	}
	if _, err := f.ver.Verify(tokA); err != nil {
		t.Fatalf("token of the retired key: %v", err)
	}
	tokB, cB := f.issue(t, alice)
	if cB.KeyID != kidB {
		t.Fatalf("new token signed by %q", cB.KeyID)
	}
	if got := jwksKIDs(t, f.ring); !slices.Equal(got, []string{kidB, kidC, kidA}) {
		t.Fatalf("JWKS after rotation %v", got)
	}
	// The retired key's private half is gone from the store.
	stored, _, _ := f.store.LoadKeys(ctx)
	for _, k := range stored {
		if k.KID == kidA && (len(k.SealedSeed) != 0 || k.KEKID != "") {
			t.Fatal("retired key still has its sealed seed")
		}
	}

	// A token issued with the maximum lifetime just before the next
	// rotation must outlive nothing it depends on.
	tokLong, cLong, err := f.iss.Issue(alice, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	f.clk.Advance(time.Minute)
	if _, err := f.ring.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	// Right up to its expiry plus leeway, the long token verifies.
	f.clk.Advance(cLong.ExpiresAt.Sub(f.clk.Now()) + 29*time.Second)
	if _, err := f.ver.Verify(tokLong); err != nil {
		t.Fatalf("max-lifetime token of a retired key at its end: %v", err)
	}
	_ = tokB

	// A was retired at 12:05:00.5 and verifies until MaxTTL + Leeway +
	// RetireGrace later, 13:10:30.5; B until 13:11:30.5. Now it is 13:11:29:
	// the JWKS and verifier forget A by themselves, Prune deletes it.
	f.clk.Advance(6 * time.Minute)
	if slices.Contains(jwksKIDs(t, f.ring), kidA) {
		t.Fatal("JWKS still lists a key past its removal time")
	}
	if _, ok := f.ring.lookup(kidA, f.clk.Now()); ok {
		t.Fatal("verifier still uses a key past its removal time")
	}
	n, err := f.ring.Prune(ctx)
	if err != nil || n != 1 {
		t.Fatalf("Prune = %d, %v; want 1 (A)", n, err)
	}
	if n, _ := f.ring.Prune(ctx); n != 0 {
		t.Fatal("second Prune removed more")
	}
	// B retired a minute after A and goes a minute later.
	f.clk.Advance(time.Minute)
	if n, _ := f.ring.Prune(ctx); n != 1 || len(f.ring.Keys()) != 2 {
		t.Fatalf("Prune of B = %d, keys %+v", n, f.ring.Keys())
	}
}

func jwksKIDs(t *testing.T, r *Keyring) []string {
	t.Helper()
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(r.JWKS(), &set); err != nil {
		t.Fatal(err)
	}
	var kids []string
	for _, k := range set.Keys {
		kids = append(kids, k["kid"].(string))
	}
	return kids
}

func TestJWKSFormat(t *testing.T) {
	f := newFixture(t)
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	raw := f.ring.JWKS()
	if err := json.Unmarshal(raw, &set); err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != 2 {
		t.Fatalf("%d keys", len(set.Keys))
	}
	for _, k := range set.Keys {
		if k["kty"] != "OKP" || k["crv"] != "Ed25519" || k["use"] != "sig" || k["alg"] != "EdDSA" || k["kid"] == "" {
			t.Fatalf("key %v", k)
		}
		if _, ok := k["d"]; ok {
			t.Fatal("private key material in the JWKS")
		}
		if len(k) != 6 {
			t.Fatalf("unexpected members in %v", k)
		}
	}
}

// TestRotationAcrossReplicas: replica B has not seen A's rotation yet. A
// signs with the new active key, which B knows as staged and so accepts.
// After B reloads, B signs with it too, and B still accepts A's old tokens.
func TestRotationAcrossReplicas(t *testing.T) {
	a := newFixture(t)
	b := newFixtureSharing(t, a, 0)
	ctx := context.Background()
	oldTok, _ := b.issue(t, alice)

	if _, err := a.ring.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	newTok, _ := a.issue(t, alice)
	if _, err := b.ver.Verify(newTok); err != nil {
		t.Fatalf("stale replica rejects the new key: %v", err)
	}
	// B, still stale, keeps signing with the old key; A accepts that.
	staleTok, _ := b.issue(t, alice)
	if _, err := a.ver.Verify(staleTok); err != nil {
		t.Fatalf("rotated replica rejects a stale replica's token: %v", err)
	}
	if err := b.ring.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if b.ring.ActiveKID() != a.ring.ActiveKID() || b.ring.Revision() != a.ring.Revision() {
		t.Fatal("reload did not pick up the rotation")
	}
	for _, tok := range []string{oldTok, newTok, staleTok} {
		if _, err := b.ver.Verify(tok); err != nil {
			t.Fatal(err)
		}
	}
}

// conflictStore changes the key set between a load and the following store,
// as a concurrent rotation on another replica would.
type conflictStore struct {
	*MemKeyStore
	interfere func()
}

func (s *conflictStore) StoreKeys(ctx context.Context, keys []SealedKey, rev int64) (int64, error) {
	if s.interfere != nil {
		f := s.interfere
		s.interfere = nil
		f()
	}
	return s.MemKeyStore.StoreKeys(ctx, keys, rev)
}

func TestRotateConflict(t *testing.T) {
	f := newFixture(t)
	other := newFixtureSharing(t, f, 0)
	cs := &conflictStore{MemKeyStore: f.store}
	f.ring.store = cs
	before := f.ring.ActiveKID()
	cs.interfere = func() {
		if _, err := other.ring.Rotate(context.Background()); err != nil {
			t.Error(err)
		}
	}
	if _, err := f.ring.Rotate(context.Background()); !errors.Is(err, ErrKeyConflict) {
		t.Fatalf("Rotate during a concurrent rotation: %v", err)
	}
	// Nothing was installed from the failed attempt; a reload catches up.
	if f.ring.ActiveKID() != before {
		t.Fatal("failed rotation changed the view")
	}
	if err := f.ring.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if f.ring.ActiveKID() != other.ring.ActiveKID() {
		t.Fatal("reload after conflict")
	}
}

// TestRotateUnderLoad rotates repeatedly while other goroutines issue and
// verify on two replicas; not a single verification may fail.
func TestRotateUnderLoad(t *testing.T) {
	a := newFixture(t)
	b := newFixtureSharing(t, a, 0)
	ctx := context.Background()
	var stop atomic.Bool
	var failures, verified atomic.Int64
	var wg sync.WaitGroup
	for i := range 4 {
		issuer, verifier := a, b
		if i%2 == 1 {
			issuer, verifier = b, a
		}
		wg.Go(func() {
			for !stop.Load() {
				raw, _, err := issuer.iss.Issue(alice, 0)
				if err != nil {
					t.Error(err)
					return
				}
				if _, err := verifier.ver.Verify(raw); err != nil {
					failures.Add(1)
					t.Errorf("verify during rotation: %v", err)
					return
				}
				verified.Add(1)
			}
		})
	}
	waitProgress := func() {
		n := verified.Load()
		for verified.Load() < n+8 && !t.Failed() {
			runtime.Gosched()
		}
	}
	for i := range 20 {
		r := a.ring
		if i%2 == 1 {
			r = b.ring
		}
		// Each rotation first catches up, as the watch would make it.
		if err := r.Reload(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Rotate(ctx); err != nil {
			t.Fatal(err)
		}
		// The other replica learns about it only after some tokens went
		// through, like with a slow watch.
		waitProgress()
		other := b.ring
		if i%2 == 1 {
			other = a.ring
		}
		if err := other.Reload(ctx); err != nil {
			t.Fatal(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	if failures.Load() != 0 || verified.Load() == 0 {
		t.Fatalf("%d failures, %d verified", failures.Load(), verified.Load())
	}
}

func TestKeysSealedAtRest(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	kid := f.ring.ActiveKID()
	priv := f.privateKey(t, kid)
	stored, _, _ := f.store.LoadKeys(ctx)
	blob, _ := json.Marshal(stored)
	if bytes.Contains(blob, priv.Seed()) || bytes.Contains(blob, []byte(b64(priv.Seed()))) {
		t.Fatal("plaintext seed in the stored key set")
	}
	for _, k := range stored {
		if k.KEKID != f.kek.ID() || len(k.SealedSeed) != 12+32+16 {
			t.Fatalf("sealed form %+v", k)
		}
	}

	// The wrong KEK cannot open the key set.
	if _, err := OpenKeyring(ctx, f.store, f.cfg, testKEK(t, 2)); !errors.Is(err, ErrUnseal) {
		t.Fatalf("open with the wrong KEK: %v", err)
	}

	// A sealed seed moved to another key's record fails to unseal (AAD).
	swapped := cloneKeys(stored)
	swapped[0].SealedSeed, swapped[1].SealedSeed = swapped[1].SealedSeed, swapped[0].SealedSeed
	if _, err := openOn(t, swapped, f); !errors.Is(err, ErrUnseal) {
		t.Fatalf("swapped seeds: %v", err)
	}
	// A flipped bit fails too.
	flipped := cloneKeys(stored)
	flipped[0].SealedSeed[20] ^= 1
	if _, err := openOn(t, flipped, f); !errors.Is(err, ErrUnseal) {
		t.Fatalf("flipped bit: %v", err)
	}
}

func openOn(t *testing.T, keys []SealedKey, f *fixture) (*Keyring, error) {
	t.Helper()
	s := &MemKeyStore{}
	if _, err := s.StoreKeys(context.Background(), keys, 0); err != nil {
		t.Fatal(err)
	}
	return OpenKeyring(context.Background(), s, f.cfg, f.kek)
}

func TestCorruptKeySetsRejected(t *testing.T) {
	f := newFixture(t)
	stored, _, _ := f.store.LoadKeys(context.Background())
	other := newFixture(t)
	otherKeys, _, _ := other.store.LoadKeys(context.Background())
	cases := map[string]func(ks []SealedKey) []SealedKey{
		"no active":  func(ks []SealedKey) []SealedKey { return ks[1:] },
		"two active": func(ks []SealedKey) []SealedKey { ks[1].State = Active; return ks },
		"two staged": func(ks []SealedKey) []SealedKey { ks[0].State = Staged; return append(ks, otherStaged(otherKeys)) },
		"duplicate": func(ks []SealedKey) []SealedKey {
			ks[1] = ks[0]
			ks[1].State = Retired
			ks[1].RemoveAfter = t0
			return ks
		},
		"kid mismatch":   func(ks []SealedKey) []SealedKey { ks[0].KID = ks[1].KID + "x"; return ks },
		"short pubkey":   func(ks []SealedKey) []SealedKey { ks[0].PublicKey = ks[0].PublicKey[:31]; return ks },
		"unknown state":  func(ks []SealedKey) []SealedKey { ks[1].State = "pending"; return ks },
		"retired no end": func(ks []SealedKey) []SealedKey { ks[1].State = Retired; return ks },
		"pubkey swapped": func(ks []SealedKey) []SealedKey {
			// kid and public key of another key, sealed seed of ours: the
			// seed does not match the public key.
			ks[0].PublicKey, ks[0].KID = ks[1].PublicKey, ks[1].KID
			ks[1].PublicKey, ks[1].KID = otherKeys[1].PublicKey, otherKeys[1].KID
			return ks
		},
	}
	for name, mutate := range cases {
		if _, err := openOn(t, mutate(cloneKeys(stored)), f); err == nil {
			t.Errorf("%s: corrupt key set accepted", name)
		}
	}
}

func otherStaged(ks []SealedKey) SealedKey {
	for _, k := range ks {
		if k.State == Staged {
			return k
		}
	}
	panic("no staged key")
}

func TestKEKRotationAndReseal(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	tok, _ := f.issue(t, alice)
	newKEK := testKEK(t, 9)

	// Restart with a new KEK and the old one available for unsealing.
	r, err := OpenKeyring(ctx, f.store, f.cfg, newKEK, f.kek)
	if err != nil {
		t.Fatal(err)
	}
	n, err := r.Reseal(ctx)
	if err != nil || n != 2 {
		t.Fatalf("Reseal = %d, %v", n, err)
	}
	// Now the new KEK alone suffices, the old one alone does not.
	r2, err := OpenKeyring(ctx, f.store, f.cfg, newKEK)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenKeyring(ctx, f.store, f.cfg, f.kek); !errors.Is(err, ErrUnseal) {
		t.Fatalf("old KEK after reseal: %v", err)
	}
	v, _ := NewVerifier(r2, f.cfg, nil)
	if _, err := v.Verify(tok); err != nil {
		t.Fatal(err)
	}
	if n, _ := r2.Reseal(ctx); n != 0 {
		t.Fatal("second reseal changed keys")
	}
	// New keys are sealed with the new KEK.
	if _, err := r2.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	stored, _, _ := f.store.LoadKeys(ctx)
	for _, k := range stored {
		if k.State != Retired && k.KEKID != newKEK.ID() {
			t.Fatalf("key %s sealed with %s", k.KID, k.KEKID)
		}
	}
}

func TestReloadIgnoresOlderRevision(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.ring.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	cur := f.ring.ActiveKID()
	// A slow watch delivering an older key set must not roll back.
	keys, _, _ := newFixture(t).store.LoadKeys(ctx)
	f.ring.mu.Lock()
	err := f.ring.installLocked(keys, 1)
	f.ring.mu.Unlock()
	if err != nil || f.ring.ActiveKID() != cur {
		t.Fatalf("older revision installed: %v", err)
	}
}

func TestMemKeyStoreCopies(t *testing.T) {
	s := &MemKeyStore{}
	ctx := context.Background()
	keys := []SealedKey{{KID: "a", PublicKey: []byte{1, 2, 3}}}
	if _, err := s.StoreKeys(ctx, keys, 0); err != nil {
		t.Fatal(err)
	}
	keys[0].PublicKey[0] = 9
	got, rev, _ := s.LoadKeys(ctx)
	if got[0].PublicKey[0] != 1 || rev != 1 {
		t.Fatal("store shares memory with the caller")
	}
	if _, err := s.StoreKeys(ctx, keys, 0); !errors.Is(err, ErrKeyConflict) {
		t.Fatalf("stale store: %v", err)
	}
}
