package password

import (
	"context"
	"errors"
	"strings"
	"testing"

	"golang.org/x/crypto/argon2"
)

// Known answers from the reference implementation's CLI (Debian package
// argon2, 0~20171227):
//
//	echo -n password | argon2 somesalt -id -t 2 -m 16 -p 4 -l 32 -e
//	echo -n 'correct horse battery staple' | argon2 0123456789abcdef -id -t 2 -k 19456 -p 1 -l 32 -e
//
// They pin that our m,t,p reach x/crypto's argon2id in the right order and
// that our encoding is the one other argon2 implementations read.
const (
	referencePHC        = "$argon2id$v=19$m=65536,t=2,p=4$c29tZXNhbHQ$GpZ3sK/oH9p7VIiV56G/64Zo/8GaUw434IimaPqxwCo"
	referenceDefaultPHC = "$argon2id$v=19$m=19456,t=2,p=1$MDEyMzQ1Njc4OWFiY2RlZg$gy5SuVm5Z7Vw7keB9se9p87QGcomaseB/S2U1OhTsM0"
)

func TestReferenceVectors(t *testing.T) {
	h, err := ParsePHC(referencePHC)
	if err != nil {
		t.Fatal(err)
	}
	if h.Memory != 65536 || h.Time != 2 || h.Threads != 4 || string(h.Salt) != "somesalt" {
		t.Fatalf("parsed %+v", h)
	}
	got := argon2.IDKey([]byte("password"), h.Salt, h.Time, h.Memory, h.Threads, uint32(len(h.Key)))
	if string(got) != string(h.Key) {
		t.Fatalf("argon2id(password) = %x, want %x", got, h.Key)
	}
	if h.String() != referencePHC {
		t.Fatalf("round trip = %q", h.String())
	}

	// The second vector uses today's defaults, so it verifies without a
	// rehash through the public API.
	hs, err := NewHasher(Options{})
	if err != nil {
		t.Fatal(err)
	}
	ok, rehash, err := hs.Verify(context.Background(), "correct horse battery staple", referenceDefaultPHC)
	if !ok || rehash || err != nil {
		t.Fatalf("Verify(reference default) = %v, %v, %v", ok, rehash, err)
	}
	// The other one verifies too, but asks for a rehash.
	ok, rehash, err = hs.Verify(context.Background(), "password", referencePHC)
	if !ok || !rehash || err != nil {
		t.Fatalf("Verify(reference) = %v, %v, %v", ok, rehash, err)
	}
}

func TestParsePHCRejects(t *testing.T) {
	const salt, key = "c29tZXNhbHQ", "GpZ3sK/oH9p7VIiV56G/64Zo/8GaUw434IimaPqxwCo"
	bad := map[string]string{
		"empty":            "",
		"argon2i":          "$argon2i$v=19$m=65536,t=2,p=4$" + salt + "$" + key,
		"argon2d":          "$argon2d$v=19$m=65536,t=2,p=4$" + salt + "$" + key,
		"bcrypt":           "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
		"old version":      "$argon2id$v=16$m=65536,t=2,p=4$" + salt + "$" + key,
		"no version":       "$argon2id$m=65536,t=2,p=4$" + salt + "$" + key,
		"param order":      "$argon2id$v=19$t=2,m=65536,p=4$" + salt + "$" + key,
		"missing param":    "$argon2id$v=19$m=65536,t=2$" + salt + "$" + key,
		"extra param":      "$argon2id$v=19$m=65536,t=2,p=4,keyid=x$" + salt + "$" + key,
		"leading zero":     "$argon2id$v=19$m=065536,t=2,p=4$" + salt + "$" + key,
		"negative":         "$argon2id$v=19$m=-1,t=2,p=4$" + salt + "$" + key,
		"t zero":           "$argon2id$v=19$m=65536,t=0,p=4$" + salt + "$" + key,
		"p zero":           "$argon2id$v=19$m=65536,t=2,p=0$" + salt + "$" + key,
		"m below 8p":       "$argon2id$v=19$m=31,t=2,p=4$" + salt + "$" + key,
		"m huge":           "$argon2id$v=19$m=4294967295,t=2,p=4$" + salt + "$" + key,
		"t huge":           "$argon2id$v=19$m=65536,t=1000,p=4$" + salt + "$" + key,
		"p huge":           "$argon2id$v=19$m=65536,t=2,p=255$" + salt + "$" + key,
		"padded salt":      "$argon2id$v=19$m=65536,t=2,p=4$c29tZXNhbHQ=$" + key,
		"url base64":       "$argon2id$v=19$m=65536,t=2,p=4$" + salt + "$" + strings.ReplaceAll(key, "/", "_") + "_",
		"short salt":       "$argon2id$v=19$m=65536,t=2,p=4$c2FsdA$" + key,
		"short key":        "$argon2id$v=19$m=65536,t=2,p=4$" + salt + "$c2FsdA",
		"no hash":          "$argon2id$v=19$m=65536,t=2,p=4$" + salt,
		"trailing $":       "$argon2id$v=19$m=65536,t=2,p=4$" + salt + "$" + key + "$",
		"leading garbage":  "x$argon2id$v=19$m=65536,t=2,p=4$" + salt + "$" + key,
		"noncanonical b64": "$argon2id$v=19$m=65536,t=2,p=4$c29tZXNhbHR$" + key,
		"too long":         "$argon2id$v=19$m=65536,t=2,p=4$" + salt + "$" + strings.Repeat("A", 600),
	}
	for name, s := range bad {
		if h, err := ParsePHC(s); !errors.Is(err, ErrMalformedHash) {
			t.Errorf("%s: ParsePHC(%q) = %+v, %v; want ErrMalformedHash", name, s, h, err)
		}
	}
}

// FuzzParsePHC: arbitrary strings never panic, and whatever parses
// re-encodes to exactly the input and has parameters within the bounds that
// keep a verification cheap enough to run.
func FuzzParsePHC(f *testing.F) {
	f.Add(referencePHC)
	f.Add("$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA")
	f.Add("$argon2id$v=19$m=8,t=1,p=1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA")
	f.Add(referenceDefaultPHC)
	f.Add("$argon2i$v=19$m=65536,t=2,p=4$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG")
	f.Add("$$$$$")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		h, err := ParsePHC(s)
		if err != nil {
			if h != nil {
				t.Fatal("non-nil hash with error")
			}
			return
		}
		if got := h.String(); got != s {
			t.Fatalf("round trip %q -> %q", s, got)
		}
		p := Params{Memory: h.Memory, Time: h.Time, Threads: h.Threads, SaltLen: uint32(len(h.Salt)), KeyLen: uint32(len(h.Key))}
		if err := p.Validate(); err != nil {
			t.Fatalf("parsed params fail Validate: %v", err)
		}
	})
}
