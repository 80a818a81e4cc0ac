package token

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseKEK(t *testing.T) {
	key := bytes.Repeat([]byte{0xab}, KEKSize)
	want, _ := NewKEK(key)
	for name, in := range map[string][]byte{
		"raw":        key,
		"base64":     []byte(base64.StdEncoding.EncodeToString(key) + "\n"),
		"base64 raw": []byte(base64.RawStdEncoding.EncodeToString(key)),
		"base64url":  []byte(base64.RawURLEncoding.EncodeToString(key)),
		"hex":        []byte("  " + hex.EncodeToString(key) + "\r\n"),
	} {
		k, err := ParseKEK(in)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if k.ID() != want.ID() {
			t.Errorf("%s: different key", name)
		}
	}
	for name, in := range map[string][]byte{
		"short raw":    key[:31],
		"short base64": []byte(base64.StdEncoding.EncodeToString(key[:16])),
		"text":         []byte("correct horse battery staple"),
		"empty":        nil,
	} {
		if _, err := ParseKEK(in); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
	if _, err := NewKEK(key[:16]); err == nil {
		t.Error("AES-128 key accepted")
	}
}

func TestKEKFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "kek")
	k, err := WriteNewKEKFile(path)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", st.Mode().Perm())
	}
	if _, err := WriteNewKEKFile(path); err == nil {
		t.Fatal("overwrote an existing KEK file")
	}
	loaded, err := LoadKEKFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if loaded.ID() != k.ID() {
		t.Fatal("loaded a different KEK")
	}
	// Readable by others: refused, like ssh refuses a private key.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKEKFile(path); err == nil || !strings.Contains(err.Error(), "mode") {
		t.Fatalf("world-readable KEK: %v", err)
	}
	if _, err := LoadKEKFile(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("missing file")
	}
	// A malformed file names the file but never echoes its contents.
	bad := filepath.Join(dir, "bad")
	os.WriteFile(bad, []byte("s3cr3t-but-wrong-length"), 0o600)
	_, err = LoadKEKFile(bad)
	if err == nil || strings.Contains(err.Error(), "s3cr3t") {
		t.Fatalf("bad KEK error %v", err)
	}
}

// TestKEKNeverPrinted: a KEK that lands in a log line or error message
// shows its id only.
func TestKEKNeverPrinted(t *testing.T) {
	key := bytes.Repeat([]byte{0x5a}, KEKSize)
	k, _ := NewKEK(key)
	var out strings.Builder
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%X", "%q", "%d"} {
		fmt.Fprintf(&out, verb+"\n", k)
	}
	fmt.Fprintf(&out, "%v\n", struct{ K *KEK }{k})
	fmt.Fprintf(&out, "%+v\n", []*KEK{k})
	var logBuf bytes.Buffer
	slog.New(slog.NewJSONHandler(&logBuf, nil)).Info("loaded", "kek", k)
	slog.New(slog.NewTextHandler(&logBuf, nil)).Info("loaded", "kek", k)
	all := out.String() + logBuf.String()
	for _, secret := range []string{string(key), hex.EncodeToString(key), base64.StdEncoding.EncodeToString(key), "5a5a5a", "90 90 90", "ZZZZ"} {
		if strings.Contains(all, secret) {
			t.Fatalf("key material %q printed:\n%s", secret, all)
		}
	}
	if !strings.Contains(all, k.ID()) {
		t.Fatalf("id not printed:\n%s", all)
	}
}

func TestSealUnseal(t *testing.T) {
	k := testKEK(t, 3)
	seed := bytes.Repeat([]byte{7}, 32)
	a, b := k.seal("kid", seed), k.seal("kid", seed)
	if bytes.Equal(a, b) {
		t.Fatal("sealing is deterministic: nonce reused")
	}
	if got, err := k.unseal("kid", a); err != nil || !bytes.Equal(got, seed) {
		t.Fatalf("unseal: %v", err)
	}
	for name, blob := range map[string][]byte{
		"short":   a[:10],
		"empty":   nil,
		"flipped": append(append([]byte{}, a[:len(a)-1]...), a[len(a)-1]^1),
	} {
		if _, err := k.unseal("kid", blob); err != ErrUnseal {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := k.unseal("other-kid", a); err != ErrUnseal {
		t.Error("unsealed under another key id")
	}
	if _, err := testKEK(t, 4).unseal("kid", a); err != ErrUnseal {
		t.Error("unsealed with another KEK")
	}
}
