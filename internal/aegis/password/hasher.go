package password

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"

	"golang.org/x/crypto/argon2"
)

// Errors returned by [Hasher].
var (
	// ErrEmptyPassword is returned by Hash for an empty password.
	ErrEmptyPassword = errors.New("empty password")
	// ErrPasswordTooLong is returned for a password longer than
	// Options.MaxPasswordBytes. The limit exists so that a login request
	// cannot make the server hash megabytes; it is not a strength rule.
	ErrPasswordTooLong = errors.New("password too long")
)

// Params are the argon2id cost parameters for new hashes.
//
// The defaults (m=19 MiB, t=2, p=1) are the first of the equivalent-strength
// configurations in the OWASP Password Storage Cheat Sheet. Measured on the
// 2-core reference machine (Intel Xeon, shared with other builds, load 4-9):
// one verification costs 45-50 ms of CPU and 19 MiB of memory, so a login
// stays well under 100 ms and two logins run side by side at ~40 logins/s.
// The alternatives measured there were m=64 MiB,t=1,p=2 (~90 ms CPU; p=2
// halves latency only while the other core is idle, which a busy server's
// is not) and m=46 MiB,t=1,p=1 (~65 ms); neither is stronger per guess by
// OWASP's accounting, both cost more per login. Raise them through
// configuration on larger machines: old hashes keep verifying and are
// upgraded on the next successful login (NeedsRehash).
type Params struct {
	// Memory in KiB. Default 19456 (19 MiB).
	Memory uint32
	// Time is the number of passes over the memory. Default 2.
	Time uint32
	// Threads is the number of lanes (and goroutines per hash). Default 1.
	Threads uint8
	// SaltLen is the random salt length in bytes. Default 16 (RFC 9106).
	SaltLen uint32
	// KeyLen is the derived key length in bytes. Default 32.
	KeyLen uint32
}

// DefaultParams returns the parameters new hashes use unless configured.
func DefaultParams() Params {
	p := Params{}
	p.EnsureDefaults()
	return p
}

// EnsureDefaults fills zero fields with their defaults.
func (p *Params) EnsureDefaults() {
	if p.Memory == 0 {
		p.Memory = 19 * 1024
	}
	if p.Time == 0 {
		p.Time = 2
	}
	if p.Threads == 0 {
		p.Threads = 1
	}
	if p.SaltLen == 0 {
		p.SaltLen = 16
	}
	if p.KeyLen == 0 {
		p.KeyLen = 32
	}
}

// Validate reports parameters that ParsePHC would refuse to read back, so a
// configuration can never produce hashes that later fail to verify.
func (p Params) Validate() error {
	switch {
	case p.Time < 1 || p.Time > maxTime:
		return fmt.Errorf("argon2 time must be in [1, %d], got %d", maxTime, p.Time)
	case p.Threads < 1 || p.Threads > maxThreads:
		return fmt.Errorf("argon2 threads must be in [1, %d], got %d", maxThreads, p.Threads)
	case p.Memory < minMemoryKiB*uint32(p.Threads) || p.Memory > maxMemoryKiB:
		return fmt.Errorf("argon2 memory must be in [8*threads, %d] KiB, got %d", maxMemoryKiB, p.Memory)
	case p.SaltLen < minSaltLen || p.SaltLen > maxSaltLen:
		return fmt.Errorf("salt length must be in [%d, %d], got %d", minSaltLen, maxSaltLen, p.SaltLen)
	case p.KeyLen < minKeyLen || p.KeyLen > maxKeyLen:
		return fmt.Errorf("key length must be in [%d, %d], got %d", minKeyLen, maxKeyLen, p.KeyLen)
	}
	return nil
}

// Options configure a [Hasher]. The zero value works.
type Options struct {
	// Params for new hashes; zero fields take the defaults of [Params].
	Params Params
	// MaxConcurrent bounds how many hashes run at once; further callers wait
	// (or give up when their context ends). Memory use is bounded by
	// MaxConcurrent × Params.Memory, so a burst of logins cannot exhaust
	// RAM. Default runtime.GOMAXPROCS(0).
	MaxConcurrent int
	// MaxPasswordBytes is the longest password accepted. Default 1024.
	MaxPasswordBytes int
}

// Hasher hashes and verifies passwords. It is safe for concurrent use.
type Hasher struct {
	params Params
	maxLen int
	slots  chan struct{}
	dummy  *Hash // verified against for unknown users; see VerifyUnknownUser

	derivations atomic.Uint64
}

// NewHasher returns a Hasher with opts, after filling defaults and
// validating them.
func NewHasher(opts Options) (*Hasher, error) {
	opts.Params.EnsureDefaults()
	if err := opts.Params.Validate(); err != nil {
		return nil, fmt.Errorf("password params: %w", err)
	}
	if opts.MaxConcurrent == 0 {
		opts.MaxConcurrent = runtime.GOMAXPROCS(0)
	}
	if opts.MaxConcurrent < 0 {
		return nil, fmt.Errorf("password max concurrent must be positive, got %d", opts.MaxConcurrent)
	}
	if opts.MaxPasswordBytes == 0 {
		opts.MaxPasswordBytes = 1024
	}
	if opts.MaxPasswordBytes < 0 {
		return nil, fmt.Errorf("password max bytes must be positive, got %d", opts.MaxPasswordBytes)
	}
	h := &Hasher{
		params: opts.Params,
		maxLen: opts.MaxPasswordBytes,
		slots:  make(chan struct{}, opts.MaxConcurrent),
	}
	// A random salt and key with the current parameters: comparing against
	// it costs exactly what a real verification costs and can never match.
	h.dummy = &Hash{
		Memory: h.params.Memory, Time: h.params.Time, Threads: h.params.Threads,
		Salt: make([]byte, h.params.SaltLen), Key: make([]byte, h.params.KeyLen),
	}
	rand.Read(h.dummy.Salt)
	rand.Read(h.dummy.Key)
	return h, nil
}

// Params returns the parameters new hashes are made with.
func (h *Hasher) Params() Params { return h.params }

// Hash returns the PHC string of a new argon2id hash of password with a
// fresh random salt.
func (h *Hasher) Hash(ctx context.Context, password string) (string, error) {
	if password == "" {
		return "", ErrEmptyPassword
	}
	if len(password) > h.maxLen {
		return "", ErrPasswordTooLong
	}
	salt := make([]byte, h.params.SaltLen)
	// crypto/rand.Read never fails on supported platforms (it panics
	// instead), so there is no error to handle.
	rand.Read(salt)
	key, err := h.derive(ctx, password, &Hash{Memory: h.params.Memory, Time: h.params.Time, Threads: h.params.Threads, Salt: salt}, h.params.KeyLen)
	if err != nil {
		return "", err
	}
	return (&Hash{Memory: h.params.Memory, Time: h.params.Time, Threads: h.params.Threads, Salt: salt, Key: key}).String(), nil
}

// Verify reports whether password matches the stored PHC string encoded.
// needsRehash is true when the password matched but encoded was made with
// parameters other than the current ones: the server should then store a
// new [Hasher.Hash] of the password it just verified. err is non-nil only
// for a malformed stored hash, an over-long password or a cancelled ctx;
// a wrong password is ok == false with a nil error.
func (h *Hasher) Verify(ctx context.Context, password, encoded string) (ok, needsRehash bool, err error) {
	if len(password) > h.maxLen {
		return false, false, ErrPasswordTooLong
	}
	stored, err := ParsePHC(encoded)
	if err != nil {
		return false, false, err
	}
	key, err := h.derive(ctx, password, stored, uint32(len(stored.Key)))
	if err != nil {
		return false, false, err
	}
	// Constant time so that the comparison leaks nothing about how many
	// leading bytes of a guess were right.
	if subtle.ConstantTimeCompare(key, stored.Key) != 1 {
		return false, false, nil
	}
	return true, h.outdated(stored), nil
}

// VerifyUnknownUser spends the time of one verification and returns false.
// The server calls it when the user name does not exist, so that response
// time does not reveal which user names are valid.
func (h *Hasher) VerifyUnknownUser(ctx context.Context, password string) error {
	if len(password) > h.maxLen {
		return ErrPasswordTooLong
	}
	key, err := h.derive(ctx, password, h.dummy, h.params.KeyLen)
	if err != nil {
		return err
	}
	subtle.ConstantTimeCompare(key, h.dummy.Key)
	return nil
}

// Derivations returns how many argon2id derivations the Hasher has run:
// one per Hash, Verify and VerifyUnknownUser that got past its input
// checks. Since every login attempt must cost exactly one, whether or not
// the user exists, the count is what tests compare instead of wall time.
func (h *Hasher) Derivations() uint64 { return h.derivations.Load() }

// NeedsRehash reports whether encoded was made with parameters other than
// the current ones (or cannot be parsed at all).
func (h *Hasher) NeedsRehash(encoded string) bool {
	stored, err := ParsePHC(encoded)
	return err != nil || h.outdated(stored)
}

func (h *Hasher) outdated(s *Hash) bool {
	return s.Memory != h.params.Memory || s.Time != h.params.Time || s.Threads != h.params.Threads ||
		uint32(len(s.Salt)) != h.params.SaltLen || uint32(len(s.Key)) != h.params.KeyLen
}

// derive runs argon2id with the parameters and salt of p once a slot is
// free, so that at most MaxConcurrent derivations hold memory at a time.
func (h *Hasher) derive(ctx context.Context, password string, p *Hash, keyLen uint32) ([]byte, error) {
	select {
	case h.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for password hash slot: %w", ctx.Err())
	}
	defer func() { <-h.slots }()
	h.derivations.Add(1)
	return argon2.IDKey([]byte(password), p.Salt, p.Time, p.Memory, p.Threads, keyLen), nil
}
