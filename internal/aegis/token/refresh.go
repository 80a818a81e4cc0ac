package token

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// Refresh tokens look like "rt1.<family>.<secret>": a format version, the
// family id (so the store can keep a family under one key prefix and
// revoke it with one range delete), and 256 random bits.
//
// Only SHA-256(token) is stored. A slow, salted hash (argon2) exists to
// make guessing low-entropy passwords expensive; a 256-bit random secret
// cannot be guessed at any hash speed, so a leaked store reveals no usable
// token, and a fast, unsalted hash keeps a refresh to microseconds and
// lets the store look the record up by its hash directly.
const (
	refreshPrefix    = "rt1."
	familyBytes      = 16
	secretBytes      = 32
	maxRefreshLength = 128
)

// RefreshRecord is the stored state of one refresh token.
type RefreshRecord struct {
	FamilyID string `json:"family_id"`
	// Hash is the hex SHA-256 of the whole token string.
	Hash  string `json:"hash"`
	Grant Grant  `json:"grant"`
	// AuthTime is when the principal authenticated and the family began;
	// a principal revocation at or after it ends the family.
	AuthTime  time.Time `json:"auth_time"`
	IssuedAt  time.Time `json:"issued_at"`
	ExpiresAt time.Time `json:"expires_at"`
	// FamilyExpiresAt bounds every token of the family, however often it
	// is refreshed. A store may delete the family then (a Chainfire lease).
	FamilyExpiresAt time.Time `json:"family_expires_at"`
	// UsedAt is set when the token was exchanged for its successor. A used
	// record is kept (until FamilyExpiresAt) only to detect reuse.
	UsedAt time.Time `json:"used_at,omitzero"`
}

// RefreshStore persists refresh records. The server implements it on
// Chainfire, e.g. /aegis/refresh/<family>/<hash> under a lease that ends
// at FamilyExpiresAt.
type RefreshStore interface {
	// GetRefresh returns the record, or an error wrapping
	// ErrRefreshNotFound.
	GetRefresh(ctx context.Context, familyID, hash string) (*RefreshRecord, error)
	// CreateRefresh stores the first record of a new family.
	CreateRefresh(ctx context.Context, rec *RefreshRecord) error
	// RotateRefresh atomically marks the record (familyID, oldHash) used at
	// usedAt and stores next, which belongs to the same family. If the old
	// record is already used it changes nothing and returns an error
	// wrapping ErrRefreshUsed; if it is gone, ErrRefreshNotFound. Exactly
	// one of two concurrent rotations of the same token succeeds.
	RotateRefresh(ctx context.Context, familyID, oldHash string, usedAt time.Time, next *RefreshRecord) error
	// RevokeFamily deletes every record of the family. Deleting an unknown
	// family is not an error.
	RevokeFamily(ctx context.Context, familyID string) error
}

// RefreshConfig configures a Refresher. The zero value works.
type RefreshConfig struct {
	// IdleTTL is how long one refresh token stays valid unused. Default
	// 7 days: a CLI used weekly stays logged in.
	IdleTTL time.Duration
	// MaxLifetime bounds a family from the login that started it; then the
	// principal must authenticate again. Default 30 days.
	MaxLifetime time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Refresher issues, rotates and revokes refresh tokens. It is safe for
// concurrent use; all coordination between replicas is in the store's
// RotateRefresh.
type Refresher struct {
	store RefreshStore
	revs  Revocations
	cfg   RefreshConfig
}

// NewRefresher returns a Refresher on store, honouring principal
// revocations in revs (nil: none).
func NewRefresher(store RefreshStore, revs Revocations, cfg RefreshConfig) (*Refresher, error) {
	if cfg.IdleTTL == 0 {
		cfg.IdleTTL = 7 * 24 * time.Hour
	}
	if cfg.MaxLifetime == 0 {
		cfg.MaxLifetime = 30 * 24 * time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.IdleTTL < 0 || cfg.MaxLifetime < 0 {
		return nil, errors.New("refresh token lifetimes must be positive")
	}
	if revs == nil {
		revs = noRevocations{}
	}
	return &Refresher{store: store, revs: revs, cfg: cfg}, nil
}

// Start begins a new family for g after a successful login and returns its
// first refresh token. The token string is shown to the client once and
// never stored.
func (r *Refresher) Start(ctx context.Context, g Grant) (string, *RefreshRecord, error) {
	if err := g.validate(); err != nil {
		return "", nil, err
	}
	now := r.cfg.Now()
	family := randomString(familyBytes)
	tok, rec := r.newRecord(family, g, now, now, now.Add(r.cfg.MaxLifetime))
	if err := r.store.CreateRefresh(ctx, rec); err != nil {
		return "", nil, fmt.Errorf("store refresh token: %w", err)
	}
	return tok, rec, nil
}

// Rotate exchanges token for its successor (OAuth 2.0 Security BCP 4.14:
// refresh token rotation) and returns the new token and record; the server
// issues an access token for rec.Grant (after checking the principal still
// exists and is enabled). Presenting a token that was already rotated
// means two parties hold it, one of them an attacker: the whole family is
// revoked and ErrRefreshReused returned, so the thief's successor dies
// too. Every failure wraps ErrRefreshInvalid.
func (r *Refresher) Rotate(ctx context.Context, token string) (string, *RefreshRecord, error) {
	family, hash, ok := parseRefresh(token)
	if !ok {
		return "", nil, fmt.Errorf("%w: malformed", ErrRefreshInvalid)
	}
	rec, err := r.store.GetRefresh(ctx, family, hash)
	if errors.Is(err, ErrRefreshNotFound) {
		return "", nil, fmt.Errorf("%w: unknown or revoked", ErrRefreshInvalid)
	}
	if err != nil {
		return "", nil, fmt.Errorf("load refresh token: %w", err)
	}
	if !rec.UsedAt.IsZero() {
		return "", nil, r.reused(ctx, family)
	}
	now := r.cfg.Now()
	if !now.Before(rec.ExpiresAt) || !now.Before(rec.FamilyExpiresAt) {
		return "", nil, ErrRefreshExpired
	}
	if at, ok := r.revs.PrincipalRevokedAt(rec.Grant.Subject); ok && !rec.AuthTime.After(at) {
		// Clean up eagerly; the family is dead either way.
		if err := r.store.RevokeFamily(ctx, family); err != nil {
			return "", nil, fmt.Errorf("revoke refresh family: %w", err)
		}
		return "", nil, ErrRefreshRevoked
	}
	tok, next := r.newRecord(family, rec.Grant, rec.AuthTime, now, rec.FamilyExpiresAt)
	switch err := r.store.RotateRefresh(ctx, family, hash, now, next); {
	case errors.Is(err, ErrRefreshUsed):
		// Lost a race with a concurrent rotation of the same token: that is
		// reuse just the same.
		return "", nil, r.reused(ctx, family)
	case errors.Is(err, ErrRefreshNotFound):
		return "", nil, fmt.Errorf("%w: unknown or revoked", ErrRefreshInvalid)
	case err != nil:
		return "", nil, fmt.Errorf("rotate refresh token: %w", err)
	}
	return tok, next, nil
}

func (r *Refresher) reused(ctx context.Context, family string) error {
	if err := r.store.RevokeFamily(ctx, family); err != nil {
		return fmt.Errorf("revoke reused refresh family: %w", err)
	}
	return ErrRefreshReused
}

// Revoke ends the family of token (logout, RFC 7009 revocation). A
// malformed or unknown token is not an error: revocation is idempotent and
// must not tell a caller which tokens exist.
func (r *Refresher) Revoke(ctx context.Context, token string) error {
	family, _, ok := parseRefresh(token)
	if !ok {
		return nil
	}
	if err := r.store.RevokeFamily(ctx, family); err != nil {
		return fmt.Errorf("revoke refresh family: %w", err)
	}
	return nil
}

func (r *Refresher) newRecord(family string, g Grant, authTime, now, familyExp time.Time) (string, *RefreshRecord) {
	tok := refreshPrefix + family + "." + randomString(secretBytes)
	exp := now.Add(r.cfg.IdleTTL)
	if exp.After(familyExp) {
		exp = familyExp
	}
	g.Permissions = slices.Clone(g.Permissions)
	g.Audience = slices.Clone(g.Audience)
	return tok, &RefreshRecord{
		FamilyID: family, Hash: hashRefresh(tok), Grant: g,
		AuthTime: authTime, IssuedAt: now, ExpiresAt: exp, FamilyExpiresAt: familyExp,
	}
}

// parseRefresh splits a refresh token and hashes it. It checks the shape
// only; whether the token exists is the store's business.
func parseRefresh(tok string) (family, hash string, ok bool) {
	if len(tok) > maxRefreshLength {
		return "", "", false
	}
	rest, ok := strings.CutPrefix(tok, refreshPrefix)
	if !ok {
		return "", "", false
	}
	family, secret, ok := strings.Cut(rest, ".")
	if !ok || !isB64Len(family, familyBytes) || !isB64Len(secret, secretBytes) {
		return "", "", false
	}
	return family, hashRefresh(tok), true
}

func isB64Len(s string, n int) bool {
	// encoding/base64 skips \r and \n; only the exact spelling may parse.
	if len(s) != base64.RawURLEncoding.EncodedLen(n) {
		return false
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	return err == nil && len(b) == n
}

func hashRefresh(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])
}

func randomString(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// MemRefreshStore is an in-memory RefreshStore for tests and
// single-process tools. It stores copies, like a real store would.
type MemRefreshStore struct {
	mu       sync.Mutex
	families map[string]map[string]*RefreshRecord
}

// NewMemRefreshStore returns an empty store.
func NewMemRefreshStore() *MemRefreshStore {
	return &MemRefreshStore{families: map[string]map[string]*RefreshRecord{}}
}

// GetRefresh implements RefreshStore.
func (s *MemRefreshStore) GetRefresh(_ context.Context, familyID, hash string) (*RefreshRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.families[familyID][hash]
	if !ok {
		return nil, ErrRefreshNotFound
	}
	return cloneRecord(rec), nil
}

// CreateRefresh implements RefreshStore.
func (s *MemRefreshStore) CreateRefresh(_ context.Context, rec *RefreshRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	fam := s.families[rec.FamilyID]
	if fam == nil {
		fam = map[string]*RefreshRecord{}
		s.families[rec.FamilyID] = fam
	}
	if _, dup := fam[rec.Hash]; dup {
		return fmt.Errorf("refresh record %s exists", rec.Hash)
	}
	fam[rec.Hash] = cloneRecord(rec)
	return nil
}

// RotateRefresh implements RefreshStore.
func (s *MemRefreshStore) RotateRefresh(_ context.Context, familyID, oldHash string, usedAt time.Time, next *RefreshRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	fam := s.families[familyID]
	old, ok := fam[oldHash]
	if !ok {
		return ErrRefreshNotFound
	}
	if !old.UsedAt.IsZero() {
		return ErrRefreshUsed
	}
	if next.FamilyID != familyID {
		return fmt.Errorf("refresh record belongs to family %s, not %s", next.FamilyID, familyID)
	}
	old.UsedAt = usedAt
	fam[next.Hash] = cloneRecord(next)
	return nil
}

// RevokeFamily implements RefreshStore.
func (s *MemRefreshStore) RevokeFamily(_ context.Context, familyID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.families, familyID)
	return nil
}

// Sweep deletes families whose FamilyExpiresAt is not after now, as a
// Chainfire lease would, and returns how many it deleted.
func (s *MemRefreshStore) Sweep(now time.Time) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for id, fam := range s.families {
		if familyExpired(fam, now) {
			delete(s.families, id)
			n++
		}
	}
	return n
}

// familyExpired looks at any one record: all records of a family share
// FamilyExpiresAt.
func familyExpired(fam map[string]*RefreshRecord, now time.Time) bool {
	for _, rec := range fam {
		return !now.Before(rec.FamilyExpiresAt)
	}
	return true
}

// Len returns the number of records held.
func (s *MemRefreshStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, fam := range s.families {
		n += len(fam)
	}
	return n
}

func cloneRecord(r *RefreshRecord) *RefreshRecord {
	c := *r
	c.Grant.Permissions = slices.Clone(r.Grant.Permissions)
	c.Grant.Audience = slices.Clone(r.Grant.Audience)
	return &c
}
