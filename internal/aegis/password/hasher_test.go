package password

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// cheap parameters keep the tests fast; the defaults are covered by
// TestDefaultParamsLoginCost and the benchmarks.
var cheap = Params{Memory: 64, Time: 1, Threads: 1}

func newTestHasher(t testing.TB, p Params) *Hasher {
	t.Helper()
	h, err := NewHasher(Options{Params: p})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestHashVerify(t *testing.T) {
	ctx := context.Background()
	h := newTestHasher(t, cheap)
	enc, err := h.Hash(ctx, "correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(enc, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Fatalf("unexpected PHC string %q", enc)
	}
	ok, rehash, err := h.Verify(ctx, "correct horse battery staple", enc)
	if err != nil || !ok || rehash {
		t.Fatalf("Verify(right) = %v, %v, %v; want true, false, nil", ok, rehash, err)
	}
	for _, wrong := range []string{"", "correct horse battery stapl", "correct horse battery staple ", "Correct horse battery staple"} {
		ok, rehash, err := h.Verify(ctx, wrong, enc)
		if err != nil || ok || rehash {
			t.Fatalf("Verify(%q) = %v, %v, %v; want false, false, nil", wrong, ok, rehash, err)
		}
	}
}

func TestSaltIsPerHash(t *testing.T) {
	ctx := context.Background()
	h := newTestHasher(t, cheap)
	a, _ := h.Hash(ctx, "same")
	b, _ := h.Hash(ctx, "same")
	if a == b {
		t.Fatal("two hashes of the same password are equal: salt is not random")
	}
	pa, _ := ParsePHC(a)
	pb, _ := ParsePHC(b)
	if len(pa.Salt) != 16 || string(pa.Salt) == string(pb.Salt) {
		t.Fatalf("salts %x and %x", pa.Salt, pb.Salt)
	}
}

func TestOlderParamsVerifyAndNeedRehash(t *testing.T) {
	ctx := context.Background()
	old := newTestHasher(t, Params{Memory: 32, Time: 2, Threads: 1, SaltLen: 8, KeyLen: 16})
	enc, err := old.Hash(ctx, "pw")
	if err != nil {
		t.Fatal(err)
	}
	cur := newTestHasher(t, cheap)
	if !cur.NeedsRehash(enc) {
		t.Fatal("NeedsRehash(old) = false")
	}
	ok, rehash, err := cur.Verify(ctx, "pw", enc)
	if err != nil || !ok || !rehash {
		t.Fatalf("Verify(old hash) = %v, %v, %v; want true, true, nil", ok, rehash, err)
	}
	// A wrong password never asks for a rehash: the server must not store
	// a hash of something it did not verify.
	if ok, rehash, _ := cur.Verify(ctx, "nope", enc); ok || rehash {
		t.Fatal("wrong password reported ok or rehash")
	}
	upgraded, _ := cur.Hash(ctx, "pw")
	if cur.NeedsRehash(upgraded) {
		t.Fatal("NeedsRehash(current) = true")
	}
	if !cur.NeedsRehash("garbage") {
		t.Fatal("NeedsRehash(garbage) = false")
	}
}

func TestHashLimits(t *testing.T) {
	ctx := context.Background()
	h, err := NewHasher(Options{Params: cheap, MaxPasswordBytes: 8})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Hash(ctx, ""); !errors.Is(err, ErrEmptyPassword) {
		t.Fatalf("Hash(empty) err = %v", err)
	}
	if _, err := h.Hash(ctx, "123456789"); !errors.Is(err, ErrPasswordTooLong) {
		t.Fatalf("Hash(long) err = %v", err)
	}
	enc, _ := h.Hash(ctx, "12345678")
	if _, _, err := h.Verify(ctx, "123456789", enc); !errors.Is(err, ErrPasswordTooLong) {
		t.Fatalf("Verify(long) err = %v", err)
	}
	if _, _, err := h.Verify(ctx, "x", "$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"); !errors.Is(err, ErrMalformedHash) {
		t.Fatalf("Verify(argon2i) err = %v", err)
	}
}

func TestParamsValidate(t *testing.T) {
	for _, p := range []Params{
		{Memory: 64, Time: 0, Threads: 1, SaltLen: 16, KeyLen: 32},
		{Memory: 64, Time: 1, Threads: 0, SaltLen: 16, KeyLen: 32},
		{Memory: 7, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32},
		{Memory: 16, Time: 1, Threads: 4, SaltLen: 16, KeyLen: 32},
		{Memory: 2 << 20, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32},
		{Memory: 64, Time: 1, Threads: 1, SaltLen: 4, KeyLen: 32},
		{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 8},
		{Memory: 64, Time: 100, Threads: 1, SaltLen: 16, KeyLen: 32},
	} {
		if err := p.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil", p)
		}
		if _, err := NewHasher(Options{Params: p}); err == nil && p.Time != 0 && p.Threads != 0 {
			t.Errorf("NewHasher(%+v) accepted", p)
		}
	}
	if err := DefaultParams().Validate(); err != nil {
		t.Fatal(err)
	}
	if _, err := NewHasher(Options{MaxConcurrent: -1}); err == nil {
		t.Fatal("negative MaxConcurrent accepted")
	}
}

func TestVerifyUnknownUser(t *testing.T) {
	h := newTestHasher(t, cheap)
	if err := h.VerifyUnknownUser(context.Background(), "pw"); err != nil {
		t.Fatal(err)
	}
	if err := h.VerifyUnknownUser(context.Background(), strings.Repeat("x", 2000)); !errors.Is(err, ErrPasswordTooLong) {
		t.Fatalf("err = %v", err)
	}
}

// TestConcurrencyBound checks that a derivation waits for a free slot and
// that a waiting caller gives up with its context.
func TestConcurrencyBound(t *testing.T) {
	h, err := NewHasher(Options{Params: cheap, MaxConcurrent: 1})
	if err != nil {
		t.Fatal(err)
	}
	h.slots <- struct{}{} // occupy the only slot
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := h.Hash(ctx, "pw"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Hash with busy slots err = %v, want deadline exceeded", err)
	}
	<-h.slots

	// With the slot free again the same call succeeds.
	if _, err := h.Hash(context.Background(), "pw"); err != nil {
		t.Fatal(err)
	}
}

func BenchmarkHashDefault(b *testing.B) {
	h := newTestHasher(b, Params{})
	ctx := context.Background()
	for b.Loop() {
		if _, err := h.Hash(ctx, "correct horse battery staple"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyDefault(b *testing.B) {
	h := newTestHasher(b, Params{})
	ctx := context.Background()
	enc, _ := h.Hash(ctx, "correct horse battery staple")
	for b.Loop() {
		if ok, _, err := h.Verify(ctx, "correct horse battery staple", enc); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}

// BenchmarkVerifyParallelDefault shows login throughput when both cores
// are busy with logins (MaxConcurrent = GOMAXPROCS).
func BenchmarkVerifyParallelDefault(b *testing.B) {
	h := newTestHasher(b, Params{})
	ctx := context.Background()
	enc, _ := h.Hash(ctx, "correct horse battery staple")
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if ok, _, err := h.Verify(ctx, "correct horse battery staple", enc); !ok || err != nil {
				b.Error(ok, err)
				return
			}
		}
	})
}
