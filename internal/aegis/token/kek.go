package token

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
)

// KEKSize is the length of a key-encryption key: AES-256.
const KEKSize = 32

// ErrUnseal is returned when sealed key material cannot be decrypted: the
// wrong KEK, or data that was tampered with or moved to another key id.
var ErrUnseal = errors.New("cannot unseal signing key")

// KEK is the key-encryption key that seals signing keys at rest with
// AES-256-GCM. The server loads it from a file; it never leaves the
// process: String, GoString, Format and LogValue print only its id, so a
// KEK that ends up in a log line or an error message leaks nothing.
type KEK struct {
	id   string
	aead cipher.AEAD
}

// NewKEK returns a KEK for a 32-byte key. The caller may wipe key
// afterwards; the KEK keeps only the expanded AES key schedule.
func NewKEK(key []byte) (*KEK, error) {
	if len(key) != KEKSize {
		return nil, fmt.Errorf("key-encryption key must be %d bytes, got %d", KEKSize, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("key-encryption key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("key-encryption key: %w", err)
	}
	// The id names the KEK in sealed records so that unsealing picks the
	// right one during a KEK rotation. A domain-separated hash of a random
	// 256-bit key reveals nothing about it.
	sum := sha256.Sum256(append([]byte("aegis kek id\x00"), key...))
	return &KEK{id: hex.EncodeToString(sum[:8]), aead: aead}, nil
}

// ParseKEK reads a KEK from the contents of a key file: either exactly 32
// raw bytes, or 32 bytes in standard or URL-safe base64 (padded or not) or
// hex, with surrounding whitespace ignored. Text forms exist so the file
// can be written by `openssl rand -base64 32` or a config-management tool.
func ParseKEK(data []byte) (*KEK, error) {
	if len(data) == KEKSize {
		return NewKEK(data)
	}
	text := bytes.TrimSpace(data)
	for _, dec := range []func([]byte) ([]byte, error){
		decodeWith(base64.StdEncoding), decodeWith(base64.RawStdEncoding),
		decodeWith(base64.URLEncoding), decodeWith(base64.RawURLEncoding),
		func(b []byte) ([]byte, error) { return hex.DecodeString(string(b)) },
	} {
		if key, err := dec(text); err == nil && len(key) == KEKSize {
			return NewKEK(key)
		}
	}
	// Do not echo the data: it is (almost) a secret.
	return nil, fmt.Errorf("key-encryption key must be 32 raw bytes or 32 bytes in base64 or hex (got %d bytes of input)", len(data))
}

func decodeWith(enc *base64.Encoding) func([]byte) ([]byte, error) {
	return func(b []byte) ([]byte, error) {
		out := make([]byte, enc.DecodedLen(len(b)))
		n, err := enc.Decode(out, b)
		return out[:n], err
	}
}

// LoadKEKFile reads a KEK file (see ParseKEK). On Unix it refuses a file
// that group or others can read, as ssh does for private keys: a KEK that
// every local user can read protects nothing.
func LoadKEKFile(path string) (*KEK, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open key-encryption key: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat key-encryption key: %w", err)
	}
	if runtime.GOOS != "windows" && st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("key-encryption key file %s has mode %v; want 0600 or stricter", path, st.Mode().Perm())
	}
	if st.Size() > 4096 {
		return nil, fmt.Errorf("key-encryption key file %s is too large", path)
	}
	data := make([]byte, st.Size())
	if _, err := f.ReadAt(data, 0); err != nil {
		return nil, fmt.Errorf("read key-encryption key: %w", err)
	}
	defer clear(data)
	kek, err := ParseKEK(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return kek, nil
}

// WriteNewKEKFile creates path (mode 0600) holding a new random KEK in
// base64, for bootstrap and `photon dev`. The file appears whole or not at
// all (written aside, then linked into place), so a reader never sees it
// half written; if path already exists it fails with an error wrapping
// fs.ErrExist and the caller should load that one. Losing this file makes
// the stored signing keys unusable: Aegis then has to start a new key set
// and every outstanding token fails.
func WriteNewKEKFile(path string) (*KEK, error) {
	key := make([]byte, KEKSize)
	rand.Read(key)
	defer clear(key)
	f, err := os.CreateTemp(filepath.Dir(path), ".kek-*")
	if err != nil {
		return nil, fmt.Errorf("create key-encryption key: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	text := base64.StdEncoding.EncodeToString(key) + "\n"
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return nil, fmt.Errorf("create key-encryption key: %w", err)
	}
	if _, err := f.WriteString(text); err != nil {
		f.Close()
		return nil, fmt.Errorf("write key-encryption key: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, fmt.Errorf("sync key-encryption key: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("close key-encryption key: %w", err)
	}
	// A hard link fails if path exists: of two replicas creating the
	// same file, exactly one wins and the other loads the winner's key.
	if err := os.Link(tmp, path); err != nil {
		return nil, fmt.Errorf("create key-encryption key: %w", err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return NewKEK(key)
}

// ID identifies the KEK without revealing it.
func (k *KEK) ID() string { return k.id }

// String never prints key material.
func (k *KEK) String() string { return "KEK(" + k.id + ")" }

// GoString never prints key material, even with %#v.
func (k *KEK) GoString() string { return k.String() }

// Format makes every fmt verb print String, so %x or %+v cannot reach the
// AEAD's fields either.
func (k *KEK) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(k.String())) }

// LogValue keeps the key out of structured logs.
func (k *KEK) LogValue() slog.Value { return slog.StringValue(k.String()) }

// sealAAD binds a sealed key to its key id, so a sealed blob copied into
// another key's record fails to unseal instead of silently signing with
// the wrong key.
func sealAAD(kid string) []byte {
	return append([]byte("aegis signing key v1\x00"), kid...)
}

// seal encrypts plaintext (an Ed25519 seed) as nonce || ciphertext || tag.
func (k *KEK) seal(kid string, plaintext []byte) []byte {
	nonce := make([]byte, k.aead.NonceSize(), k.aead.NonceSize()+len(plaintext)+k.aead.Overhead())
	// Random 96-bit nonces are safe here: a KEK seals a handful of keys per
	// rotation, far below the 2^32 messages where collisions matter.
	rand.Read(nonce)
	return k.aead.Seal(nonce, nonce, plaintext, sealAAD(kid))
}

func (k *KEK) unseal(kid string, sealed []byte) ([]byte, error) {
	ns := k.aead.NonceSize()
	if len(sealed) < ns+k.aead.Overhead() {
		return nil, ErrUnseal
	}
	pt, err := k.aead.Open(nil, sealed[:ns], sealed[ns:], sealAAD(kid))
	if err != nil {
		return nil, ErrUnseal
	}
	return pt, nil
}
