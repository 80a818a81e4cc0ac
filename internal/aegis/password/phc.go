// Package password hashes and verifies Aegis user passwords with argon2id
// and rate-limits login attempts.
//
// Hashes are stored in the PHC string format
//
//	$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>
//
// (salt and hash in unpadded standard base64), so the parameters travel with
// every hash: a hash made with older parameters still verifies, and
// [Hasher.Verify] reports that it should be replaced by a hash with the
// current parameters (NeedsRehash) once the login has succeeded.
//
// [Limiter] is what the server calls before it checks a password: it keeps a
// token bucket per user name and per source address, in bounded memory, and
// says how long a refused caller has to wait.
package password

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Bounds for parameters read from a stored hash. A stored hash is trusted
// data, but a corrupted or planted one must not make a login allocate
// gigabytes or spin for minutes, so parsing refuses anything outside these.
const (
	minMemoryKiB = 8       // argon2 needs at least 8 KiB per lane; checked against p below
	maxMemoryKiB = 1 << 20 // 1 GiB
	maxTime      = 64      // passes
	maxThreads   = 64      // lanes
	minSaltLen   = 8       // RFC 9106 recommends 16; 8 is the PHC minimum
	maxSaltLen   = 64      // bytes
	minKeyLen    = 16      // bytes; anything shorter is too easy to collide
	maxKeyLen    = 128     // bytes
	maxPHCLen    = 512     // characters; the longest valid string is far shorter
	argonVersion = 0x13    // argon2 v1.3, written as v=19
	phcAlgorithm = "argon2id"
)

// ErrMalformedHash is returned for a stored hash that is not an argon2id
// PHC string this package can verify.
var ErrMalformedHash = errors.New("malformed password hash")

// b64 is the PHC "B64" encoding: standard alphabet, no padding. Strict
// decoding rejects non-zero trailing bits so that every accepted string has
// exactly one encoding and [Hash.String] reproduces it.
var b64 = base64.RawStdEncoding.Strict()

// Hash is a parsed argon2id PHC string.
type Hash struct {
	Memory  uint32 // KiB
	Time    uint32 // passes
	Threads uint8  // lanes
	Salt    []byte
	Key     []byte // the derived key ("hash" in PHC terms)
}

// String encodes h in the PHC string format.
func (h *Hash) String() string {
	var b strings.Builder
	b.Grow(64 + b64.EncodedLen(len(h.Salt)) + b64.EncodedLen(len(h.Key)))
	b.WriteString("$" + phcAlgorithm + "$v=")
	b.WriteString(strconv.Itoa(argonVersion))
	b.WriteString("$m=")
	b.WriteString(strconv.FormatUint(uint64(h.Memory), 10))
	b.WriteString(",t=")
	b.WriteString(strconv.FormatUint(uint64(h.Time), 10))
	b.WriteString(",p=")
	b.WriteString(strconv.FormatUint(uint64(h.Threads), 10))
	b.WriteString("$")
	b.WriteString(b64.EncodeToString(h.Salt))
	b.WriteString("$")
	b.WriteString(b64.EncodeToString(h.Key))
	return b.String()
}

// ParsePHC parses an argon2id PHC string. It is strict on purpose: only
// version 19, parameters exactly in the order m,t,p, decimal numbers without
// leading zeros, canonical base64. Anything else is [ErrMalformedHash], so
// a parsed hash always re-encodes to the same string.
func ParsePHC(s string) (*Hash, error) {
	if len(s) > maxPHCLen {
		return nil, fmt.Errorf("%w: longer than %d characters", ErrMalformedHash, maxPHCLen)
	}
	// "$argon2id$v=19$m=..,t=..,p=..$salt$hash" splits into 6 fields, the
	// first empty.
	f := strings.Split(s, "$")
	if len(f) != 6 || f[0] != "" {
		return nil, fmt.Errorf("%w: want 5 $-separated fields", ErrMalformedHash)
	}
	if f[1] != phcAlgorithm {
		return nil, fmt.Errorf("%w: algorithm %q is not %s", ErrMalformedHash, truncate(f[1]), phcAlgorithm)
	}
	v, ok := strings.CutPrefix(f[2], "v=")
	if !ok {
		return nil, fmt.Errorf("%w: missing version", ErrMalformedHash)
	}
	if ver, err := parseDecimal(v, argonVersion); err != nil || ver != argonVersion {
		return nil, fmt.Errorf("%w: unsupported version %q", ErrMalformedHash, truncate(v))
	}
	params := strings.Split(f[3], ",")
	if len(params) != 3 {
		return nil, fmt.Errorf("%w: want parameters m,t,p", ErrMalformedHash)
	}
	var h Hash
	var vals [3]uint64
	limits := [3]uint64{maxMemoryKiB, maxTime, maxThreads}
	for i, name := range [3]string{"m=", "t=", "p="} {
		num, ok := strings.CutPrefix(params[i], name)
		if !ok {
			return nil, fmt.Errorf("%w: parameter %d must be %s", ErrMalformedHash, i+1, name[:1])
		}
		n, err := parseDecimal(num, limits[i])
		if err != nil {
			return nil, fmt.Errorf("%w: parameter %s: %v", ErrMalformedHash, name[:1], err)
		}
		vals[i] = n
	}
	h.Memory, h.Time, h.Threads = uint32(vals[0]), uint32(vals[1]), uint8(vals[2])
	if h.Time < 1 || h.Threads < 1 {
		return nil, fmt.Errorf("%w: t and p must be at least 1", ErrMalformedHash)
	}
	if h.Memory < minMemoryKiB*uint32(h.Threads) {
		return nil, fmt.Errorf("%w: m must be at least 8*p KiB", ErrMalformedHash)
	}
	var err error
	if h.Salt, err = decodeField(f[4], minSaltLen, maxSaltLen); err != nil {
		return nil, fmt.Errorf("%w: salt: %v", ErrMalformedHash, err)
	}
	if h.Key, err = decodeField(f[5], minKeyLen, maxKeyLen); err != nil {
		return nil, fmt.Errorf("%w: hash: %v", ErrMalformedHash, err)
	}
	return &h, nil
}

// parseDecimal parses a canonical decimal number no larger than limit.
func parseDecimal(s string, limit uint64) (uint64, error) {
	if s == "" || len(s) > 10 {
		return 0, errors.New("not a number")
	}
	if len(s) > 1 && s[0] == '0' {
		return 0, errors.New("leading zero")
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, errors.New("not a number")
	}
	if n > limit {
		return 0, fmt.Errorf("above the limit %d", limit)
	}
	return n, nil
}

func decodeField(s string, minLen, maxLen int) ([]byte, error) {
	if len(s) > b64.EncodedLen(maxLen) {
		return nil, errors.New("too long")
	}
	// encoding/base64 silently skips \r and \n; a PHC field has none.
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '+' || c == '/') {
			return nil, errors.New("not canonical unpadded base64")
		}
	}
	b, err := b64.DecodeString(s)
	if err != nil {
		return nil, errors.New("not canonical unpadded base64")
	}
	if len(b) < minLen || len(b) > maxLen {
		return nil, fmt.Errorf("length %d outside [%d, %d]", len(b), minLen, maxLen)
	}
	return b, nil
}

// truncate keeps error messages short when the input is garbage.
func truncate(s string) string {
	if len(s) > 16 {
		return s[:16] + "..."
	}
	return s
}
