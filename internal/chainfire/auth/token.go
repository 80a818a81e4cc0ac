package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// tokenProvider issues and verifies the tokens Authenticate hands out.
//
// Authenticate is a raft entry. The member that receives the request picks
// a prefix, proposes, and every member runs applied when the entry commits;
// then the receiving member calls issue to get the token it returns.
type tokenProvider interface {
	// prefix is the random part of a simple token, chosen before proposing.
	prefix() (string, error)
	// applied runs on every member when an Authenticate entry commits.
	applied(user, prefix string, index uint64)
	// issue returns the token of an Authenticate applied at index with the
	// auth revision rev.
	issue(user, prefix string, index, rev uint64) (string, error)
	// info resolves a token; rev is the current auth revision.
	info(ctx context.Context, token string, rev uint64) (*AuthInfo, bool)
	invalidateUser(user string)
	// disable forgets every token (auth was disabled).
	disable()
}

// parseTokenSpec splits etcd's --auth-token value "type,key=value,...".
func parseTokenSpec(spec string) (string, map[string]string, error) {
	parts := strings.Split(spec, ",")
	opts := map[string]string{}
	for _, p := range parts[1:] {
		kv := strings.Split(p, "=")
		if len(kv) != 2 {
			return "", nil, fmt.Errorf("%w: %q is not key=value", ErrInvalidAuthOpts, p)
		}
		if _, dup := opts[kv[0]]; dup {
			return "", nil, fmt.Errorf("%w: %q given twice", ErrInvalidAuthOpts, kv[0])
		}
		opts[kv[0]] = kv[1]
	}
	return parts[0], opts, nil
}

func newTokenProvider(o Options) (tokenProvider, error) {
	typ, opts, err := parseTokenSpec(o.TokenSpec)
	if err != nil {
		return nil, err
	}
	switch typ {
	case "simple":
		return newSimpleTokens(o.TokenTTL, o.Now, o.AppliedIndex), nil
	case "jwt":
		return newJWTTokens(opts, o.Now, o.Logger)
	default:
		return nil, fmt.Errorf("%w: unknown token type %q (want simple or jwt)", ErrInvalidAuthOpts, typ)
	}
}

// ---- simple tokens ----

const (
	simpleTokenLetters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	simpleTokenLength  = 16
)

// simpleTokens are "<16 random letters>.<raft index>", known to every
// member because each registers the token when the Authenticate entry is
// applied. A token expires after ttl without use; expiry is checked on use
// and expired tokens are swept while new ones are added, so no goroutine
// is needed.
type simpleTokens struct {
	ttl          time.Duration
	now          func() time.Time
	appliedIndex func() uint64

	mu        sync.Mutex
	tokens    map[string]simpleToken
	nextSweep time.Time
}

type simpleToken struct {
	user    string
	expires time.Time
}

func newSimpleTokens(ttl time.Duration, now func() time.Time, applied func() uint64) *simpleTokens {
	return &simpleTokens{ttl: ttl, now: now, appliedIndex: applied, tokens: map[string]simpleToken{}}
}

// Bounds of the wait for the entry of a token this member has not applied:
// a member that lags further, or a made-up index, makes the token invalid
// and the client authenticates again.
const (
	indexWaitLimit = 5 * time.Second
	indexWaitPoll  = 5 * time.Millisecond
)

// waitApplied waits until the member has applied index. It polls rather
// than registering a waiter, so made-up indexes cost no memory.
func (t *simpleTokens) waitApplied(ctx context.Context, index uint64) bool {
	if t.appliedIndex() >= index {
		return true
	}
	limit := time.NewTimer(indexWaitLimit)
	defer limit.Stop()
	tick := time.NewTicker(indexWaitPoll)
	defer tick.Stop()
	for t.appliedIndex() < index {
		select {
		case <-tick.C:
		case <-limit.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
	return true
}

func (t *simpleTokens) prefix() (string, error) {
	b := make([]byte, simpleTokenLength)
	n := big.NewInt(int64(len(simpleTokenLetters)))
	for i := range b {
		x, err := rand.Int(rand.Reader, n)
		if err != nil {
			return "", fmt.Errorf("generate token: %w", err)
		}
		b[i] = simpleTokenLetters[x.Int64()]
	}
	return string(b), nil
}

func tokenString(prefix string, index uint64) string {
	return prefix + "." + strconv.FormatUint(index, 10)
}

func (t *simpleTokens) applied(user, prefix string, index uint64) {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.tokens[tokenString(prefix, index)] = simpleToken{user: user, expires: now.Add(t.ttl)}
	if now.After(t.nextSweep) {
		for tok, e := range t.tokens {
			if now.After(e.expires) {
				delete(t.tokens, tok)
			}
		}
		t.nextSweep = now.Add(t.ttl / 4)
	}
}

func (t *simpleTokens) issue(user, prefix string, index, rev uint64) (string, error) {
	return tokenString(prefix, index), nil
}

func (t *simpleTokens) info(ctx context.Context, token string, rev uint64) (*AuthInfo, bool) {
	_, idx, ok := strings.Cut(token, ".")
	if !ok || strings.Contains(idx, ".") {
		return nil, false
	}
	index, err := strconv.ParseUint(idx, 10, 64)
	if err != nil {
		return nil, false
	}
	// The token may come from an entry this member has not applied yet.
	if !t.waitApplied(ctx, index) {
		return nil, false
	}
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.tokens[token]
	if !ok {
		return nil, false
	}
	if now.After(e.expires) {
		delete(t.tokens, token)
		return nil, false
	}
	// Use keeps a token alive, as etcd's TTL keeper does.
	e.expires = now.Add(t.ttl)
	t.tokens[token] = e
	return &AuthInfo{Username: e.user, Revision: rev}, true
}

func (t *simpleTokens) invalidateUser(user string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for tok, e := range t.tokens {
		if e.user == user {
			delete(t.tokens, tok)
		}
	}
}

func (t *simpleTokens) disable() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.tokens = map[string]simpleToken{}
}

// ---- JSON Web Tokens ----

// DefaultJWTTTL is the lifetime of a JWT when the spec gives no ttl.
const DefaultJWTTTL = 5 * time.Minute

// jwtTokens are signed tokens carrying the user name, the auth revision
// and an expiry: any member with the key verifies them without shared
// state, and a token becomes stale once the auth revision moves on.
type jwtTokens struct {
	method jwt.SigningMethod
	sign   any // private key or HMAC secret; nil when only verifying
	verify any // public key or HMAC secret
	ttl    time.Duration
	now    func() time.Time
	lg     *slog.Logger
}

func newJWTTokens(opts map[string]string, now func() time.Time, lg *slog.Logger) (*jwtTokens, error) {
	known := map[string]bool{"sign-method": true, "pub-key": true, "priv-key": true, "ttl": true}
	for k := range opts {
		if !known[k] {
			lg.Warn("ignoring unknown JWT token option", "option", k)
		}
	}
	t := &jwtTokens{ttl: DefaultJWTTTL, now: now, lg: lg}
	if v := opts["ttl"]; v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return nil, fmt.Errorf("%w: ttl: %v", ErrInvalidAuthOpts, err)
		}
		t.ttl = d
	}
	t.method = jwt.GetSigningMethod(opts["sign-method"])
	if t.method == nil {
		return nil, ErrInvalidAuthMethod
	}
	var pubPEM, privPEM []byte
	var err error
	if f := opts["pub-key"]; f != "" {
		if pubPEM, err = os.ReadFile(f); err != nil {
			return nil, fmt.Errorf("read JWT public key: %w", err)
		}
	}
	if f := opts["priv-key"]; f != "" {
		if privPEM, err = os.ReadFile(f); err != nil {
			return nil, fmt.Errorf("read JWT private key: %w", err)
		}
	}
	if err := t.loadKeys(pubPEM, privPEM); err != nil {
		return nil, err
	}
	return t, nil
}

// loadKeys parses the keys for the signing method's family. Both keys must
// match; a public key alone gives a member that verifies but cannot issue.
func (t *jwtTokens) loadKeys(pubPEM, privPEM []byte) error {
	type pair struct {
		pub, priv any
		equal     func() bool
	}
	var p pair
	var err error
	switch t.method.(type) {
	case *jwt.SigningMethodHMAC:
		if len(privPEM) == 0 {
			return ErrMissingKey
		}
		t.sign, t.verify = privPEM, privPEM
		return nil
	case *jwt.SigningMethodRSA, *jwt.SigningMethodRSAPSS:
		var pub *rsa.PublicKey
		var priv *rsa.PrivateKey
		if len(pubPEM) > 0 {
			if pub, err = jwt.ParseRSAPublicKeyFromPEM(pubPEM); err != nil {
				return fmt.Errorf("JWT public key: %w", err)
			}
			p.pub = pub
		}
		if len(privPEM) > 0 {
			if priv, err = jwt.ParseRSAPrivateKeyFromPEM(privPEM); err != nil {
				return fmt.Errorf("JWT private key: %w", err)
			}
			p.priv = priv
		}
		p.equal = func() bool { return pub.Equal(&priv.PublicKey) }
		if priv != nil && pub == nil {
			p.pub = &priv.PublicKey
		}
	case *jwt.SigningMethodECDSA:
		var pub *ecdsa.PublicKey
		var priv *ecdsa.PrivateKey
		if len(pubPEM) > 0 {
			if pub, err = jwt.ParseECPublicKeyFromPEM(pubPEM); err != nil {
				return fmt.Errorf("JWT public key: %w", err)
			}
			p.pub = pub
		}
		if len(privPEM) > 0 {
			if priv, err = jwt.ParseECPrivateKeyFromPEM(privPEM); err != nil {
				return fmt.Errorf("JWT private key: %w", err)
			}
			p.priv = priv
		}
		p.equal = func() bool { return pub.Equal(&priv.PublicKey) }
		if priv != nil && pub == nil {
			p.pub = &priv.PublicKey
		}
	case *jwt.SigningMethodEd25519:
		var pub ed25519.PublicKey
		var priv ed25519.PrivateKey
		if len(pubPEM) > 0 {
			k, err := jwt.ParseEdPublicKeyFromPEM(pubPEM)
			if err != nil {
				return fmt.Errorf("JWT public key: %w", err)
			}
			pub = k.(ed25519.PublicKey)
			p.pub = pub
		}
		if len(privPEM) > 0 {
			k, err := jwt.ParseEdPrivateKeyFromPEM(privPEM)
			if err != nil {
				return fmt.Errorf("JWT private key: %w", err)
			}
			priv = k.(ed25519.PrivateKey)
			p.priv = priv
		}
		p.equal = func() bool { return pub.Equal(priv.Public()) }
		if priv != nil && pub == nil {
			p.pub = priv.Public()
		}
	default:
		return fmt.Errorf("%w: unsupported signing method %s", ErrInvalidAuthMethod, t.method.Alg())
	}
	switch {
	case p.priv == nil && p.pub == nil:
		return ErrMissingKey
	case len(pubPEM) > 0 && len(privPEM) > 0 && !p.equal():
		return ErrKeyMismatch
	}
	t.sign, t.verify = p.priv, p.pub
	return nil
}

func (t *jwtTokens) prefix() (string, error)                   { return "", nil }
func (t *jwtTokens) applied(user, prefix string, index uint64) {}
func (t *jwtTokens) invalidateUser(string)                     {}
func (t *jwtTokens) disable()                                  {}

func (t *jwtTokens) issue(user, prefix string, index, rev uint64) (string, error) {
	if t.sign == nil {
		return "", ErrVerifyOnly
	}
	tok := jwt.NewWithClaims(t.method, jwt.MapClaims{
		"username": user,
		"revision": rev,
		"exp":      t.now().Add(t.ttl).Unix(),
	})
	s, err := tok.SignedString(t.sign)
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return s, nil
}

func (t *jwtTokens) info(ctx context.Context, token string, rev uint64) (*AuthInfo, bool) {
	parsed, err := jwt.Parse(token, func(*jwt.Token) (any, error) { return t.verify, nil },
		jwt.WithValidMethods([]string{t.method.Alg()}), jwt.WithTimeFunc(t.now))
	if err != nil {
		t.lg.Debug("rejecting JWT", "err", err)
		return nil, false
	}
	claims, ok := parsed.Claims.(jwt.MapClaims)
	if !ok || !parsed.Valid {
		return nil, false
	}
	user, ok := claims["username"].(string)
	if !ok {
		return nil, false
	}
	// JSON numbers decode as float64.
	r, ok := claims["revision"].(float64)
	if !ok {
		return nil, false
	}
	return &AuthInfo{Username: user, Revision: uint64(r)}, true
}
