package token

import (
	"sync"
	"time"
)

// Revocations is what the Verifier, Issuer and Refresher ask about revoked
// tokens and principals. [RevocationList] implements it; the server may
// wrap it.
type Revocations interface {
	// TokenRevoked reports whether the access token with this jti was
	// revoked (logout).
	TokenRevoked(jti string) bool
	// PrincipalRevokedAt returns the time of the principal's latest "sign
	// out everywhere": every token and refresh family of that principal
	// issued at or before it is rejected.
	PrincipalRevokedAt(subject string) (time.Time, bool)
}

// RevocationList is the in-memory revocation index of one replica. The
// server stores revocations in Chainfire (per token until its expiry, for
// example under a lease; per principal as a timestamp) and feeds every
// watch event into it, so a revocation on one replica is enforced by all
// within the watch delay. It is safe for concurrent use; lookups take a
// read lock only.
type RevocationList struct {
	now func() time.Time

	mu         sync.RWMutex
	tokens     map[string]time.Time // jti → keep until
	principals map[string]time.Time // subject → revoked at
	nextSweep  time.Time
}

// sweepEvery spaces out the amortized sweeps of expired token entries, so
// the list needs no goroutine of its own.
const sweepEvery = time.Minute

// NewRevocationList returns an empty list using clock now (nil means
// time.Now).
func NewRevocationList(now func() time.Time) *RevocationList {
	if now == nil {
		now = time.Now
	}
	return &RevocationList{now: now, tokens: map[string]time.Time{}, principals: map[string]time.Time{}}
}

// RevokeToken revokes the access token jti, which expires at exp. The entry
// is kept until exp + MaxLeeway, after which no verifier accepts the token
// anyway.
func (l *RevocationList) RevokeToken(jti string, exp time.Time) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	until := exp.Add(MaxLeeway)
	if cur, ok := l.tokens[jti]; !ok || until.After(cur) {
		l.tokens[jti] = until
	}
	if !now.Before(l.nextSweep) {
		l.sweepLocked(now)
	}
}

// ForgetToken drops a token revocation (its Chainfire entry was deleted).
func (l *RevocationList) ForgetToken(jti string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.tokens, jti)
}

// RevokePrincipal records that subject signed out everywhere at at. An
// earlier time than the one recorded is ignored, so replayed or reordered
// watch events cannot shorten a revocation.
func (l *RevocationList) RevokePrincipal(subject string, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if cur, ok := l.principals[subject]; !ok || at.After(cur) {
		l.principals[subject] = at
	}
}

// ForgetPrincipal drops the principal's revocation (the principal was
// deleted, so no token for it can authorize anything anyway).
func (l *RevocationList) ForgetPrincipal(subject string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.principals, subject)
}

// TokenRevoked implements Revocations.
func (l *RevocationList) TokenRevoked(jti string) bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	_, ok := l.tokens[jti]
	return ok
}

// PrincipalRevokedAt implements Revocations.
func (l *RevocationList) PrincipalRevokedAt(subject string) (time.Time, bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	at, ok := l.principals[subject]
	return at, ok
}

// Sweep drops token entries whose tokens have expired and returns how many
// it dropped. RevokeToken sweeps at most once a minute on its own; Sweep is
// for tests and metrics.
func (l *RevocationList) Sweep() int {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.sweepLocked(now)
}

func (l *RevocationList) sweepLocked(now time.Time) int {
	n := 0
	for jti, until := range l.tokens {
		if !now.Before(until) {
			delete(l.tokens, jti)
			n++
		}
	}
	l.nextSweep = now.Add(sweepEvery)
	return n
}

// Len returns the number of revoked tokens and principals held.
func (l *RevocationList) Len() (tokens, principals int) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return len(l.tokens), len(l.principals)
}

// noRevocations is used when the caller passes nil.
type noRevocations struct{}

func (noRevocations) TokenRevoked(string) bool                    { return false }
func (noRevocations) PrincipalRevokedAt(string) (time.Time, bool) { return time.Time{}, false }

// revokedBySubject reports whether a token issued at iat is covered by a
// principal revocation at at. iat has whole-second precision, so a token
// from the same second as the revocation counts as revoked: a token issued
// just before a sign-out must never survive it. The Issuer dates tokens
// issued in that second one second later so they are not caught.
func revokedBySubject(iat, at time.Time) bool {
	return iat.Unix() <= at.Unix()
}
