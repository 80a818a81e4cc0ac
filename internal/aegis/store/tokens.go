package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/photoncloud/photoncloud/internal/aegis/token"
)

// ---- leases ----

// leaseCache shares one Chainfire lease among every key that may expire in
// the same time bucket (audit events of one hour, revocations of one
// minute, refresh families ending in the same minute), so that a busy
// server grants a handful of leases rather than one per key.
type leaseCache struct {
	mu    sync.Mutex
	byEnd map[int64]clientv3.LeaseID // bucket end (unix seconds) → lease
}

func (c *leaseCache) init() { c.byEnd = map[int64]clientv3.LeaseID{} }

// leaseUntil returns a lease that expires at or a little after end (at the
// end of end's bucket).
func (s *Store) leaseUntil(ctx context.Context, end time.Time, bucket time.Duration) (clientv3.LeaseID, error) {
	bucketEnd := end.Truncate(bucket)
	if bucketEnd.Before(end) {
		bucketEnd = bucketEnd.Add(bucket)
	}
	k := bucketEnd.Unix()
	now := s.now()
	c := &s.leases
	c.mu.Lock()
	id, ok := c.byEnd[k]
	if !ok {
		// Forget leases of buckets that are over.
		for e := range c.byEnd {
			if e <= now.Unix() {
				delete(c.byEnd, e)
			}
		}
	}
	c.mu.Unlock()
	if ok {
		return id, nil
	}
	ttl := int64(bucketEnd.Sub(now)/time.Second) + 1
	if ttl < 1 {
		ttl = 1
	}
	resp, err := s.cli.Grant(ctx, ttl)
	if err != nil {
		return 0, fmt.Errorf("grant lease: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if other, ok := c.byEnd[k]; ok {
		// Lost a race with another caller; the extra lease just expires.
		return other, nil
	}
	c.byEnd[k] = resp.ID
	return resp.ID, nil
}

// forgetLease drops a lease Chainfire no longer knows (revoked, or lost
// with a restored snapshot).
func (s *Store) forgetLease(id clientv3.LeaseID) {
	s.leases.mu.Lock()
	defer s.leases.mu.Unlock()
	for k, v := range s.leases.byEnd {
		if v == id {
			delete(s.leases.byEnd, k)
		}
	}
}

// withLease runs put with a lease ending at end, getting a new lease once
// if Chainfire no longer knows the cached one.
func (s *Store) withLease(ctx context.Context, end time.Time, bucket time.Duration, put func(clientv3.LeaseID) error) error {
	for attempt := 0; ; attempt++ {
		id, err := s.leaseUntil(ctx, end, bucket)
		if err != nil {
			return err
		}
		err = put(id)
		if attempt == 0 && errors.Is(err, rpctypes.ErrLeaseNotFound) {
			s.forgetLease(id)
			continue
		}
		return err
	}
}

// ---- signing keys ----

// KeyStore returns the token.KeyStore of the signing-key set: one key
// holding the JSON of the []token.SealedKey, its mod revision as the
// revision.
func (s *Store) KeyStore() token.KeyStore { return keyStore{s} }

type keyStore struct{ s *Store }

// LoadKeys implements token.KeyStore from the index (which the watch keeps
// current, so a Reload triggered by OnSigningKeysChanged sees the change).
func (k keyStore) LoadKeys(context.Context) ([]token.SealedKey, int64, error) {
	k.s.ix.mu.RLock()
	raw, rev := k.s.ix.signingKeys, k.s.ix.signingKeysRev
	k.s.ix.mu.RUnlock()
	if rev == 0 {
		return nil, 0, nil
	}
	var keys []token.SealedKey
	if err := json.Unmarshal(raw, &keys); err != nil {
		return nil, 0, fmt.Errorf("decode signing keys: %w", err)
	}
	return keys, rev, nil
}

// StoreKeys implements token.KeyStore with a transaction on the key's mod
// revision.
func (k keyStore) StoreKeys(ctx context.Context, keys []token.SealedKey, rev int64) (int64, error) {
	b, err := json.Marshal(keys)
	if err != nil {
		return 0, fmt.Errorf("encode signing keys: %w", err)
	}
	resp, err := k.s.txn(ctx,
		[]clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(signingKeysKey), "=", rev)},
		[]clientv3.Op{clientv3.OpPut(signingKeysKey, string(b))}, nil)
	if err != nil {
		return 0, fmt.Errorf("store signing keys: %w", err)
	}
	if !resp.Succeeded {
		return 0, fmt.Errorf("signing keys moved past revision %d: %w", rev, token.ErrKeyConflict)
	}
	return resp.Header.Revision, nil
}

// ---- revocations ----

// RevokeToken revokes the access token jti that expires at exp, on every
// replica: the record lives (under a lease) until exp + token.MaxLeeway,
// when no verifier would accept the token anyway. It returns once this
// replica's revocation list has it.
func (s *Store) RevokeToken(ctx context.Context, jti string, exp time.Time) error {
	if jti == "" || len(jti) > 256 {
		return invalidf("token id must be 1-256 bytes")
	}
	until := exp.Add(token.MaxLeeway)
	if !until.After(s.now()) {
		return nil // expired: nothing to revoke
	}
	var rev int64
	err := s.withLease(ctx, until, time.Minute, func(id clientv3.LeaseID) error {
		resp, err := s.cli.Put(ctx, revokedTokenPrefix+jti, exp.UTC().Format(time.RFC3339Nano), clientv3.WithLease(id))
		if err != nil {
			return err
		}
		rev = resp.Header.Revision
		return nil
	})
	if err != nil {
		return fmt.Errorf("revoke token: %w", err)
	}
	s.waitOwn(ctx, rev)
	return nil
}

// RevokePrincipal revokes every token issued to subject (the token
// subject, i.e. Grant.Subject) up to now ("sign out everywhere") on every
// replica, and returns the revocation time in force: at, or, when a
// revocation in the same second or later is already stored, the second
// after it, which also covers the tokens issued since that one.
func (s *Store) RevokePrincipal(ctx context.Context, subject string, at time.Time) (time.Time, error) {
	if subject == "" || len(subject) > maxPrincipalNameSz {
		return time.Time{}, invalidf("subject must be 1-%d bytes", maxPrincipalNameSz)
	}
	key := revokedSubjectPrefix + subject
	for attempt := 0; attempt < maxAttempts; attempt++ {
		if err := s.checkOpen(); err != nil {
			return time.Time{}, err
		}
		cur, err := s.cli.Get(ctx, key)
		if err != nil {
			return time.Time{}, fmt.Errorf("revoke principal: %w", err)
		}
		var mod int64
		next := at
		if len(cur.Kvs) == 1 {
			mod = cur.Kvs[0].ModRevision
			// Tokens are dated in whole seconds, and one issued after a
			// revocation in the same second is dated the second after it
			// (token.Issuer). A new revocation no later than the recorded
			// one must therefore move past it, or it would miss the tokens
			// issued since.
			if prev, err := time.Parse(time.RFC3339Nano, string(cur.Kvs[0].Value)); err == nil && at.Unix() <= prev.Unix() {
				next = time.Unix(prev.Unix()+1, 0)
			}
		}
		resp, err := s.txn(ctx, []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", mod)},
			[]clientv3.Op{clientv3.OpPut(key, next.UTC().Format(time.RFC3339Nano))}, nil)
		if err != nil {
			return time.Time{}, fmt.Errorf("revoke principal: %w", err)
		}
		if resp.Succeeded {
			return next, nil
		}
	}
	return time.Time{}, fmt.Errorf("%w: revoke principal", ErrConflict)
}

// ---- refresh tokens ----

// RefreshStore returns the token.RefreshStore on Chainfire. Records live
// under /aegis/refresh/<family>/<hash> with a lease that ends (within a
// minute) after the family's FamilyExpiresAt; they are read from Chainfire
// directly, not from the index (they are not on the decision path, and
// there is one family per login).
func (s *Store) RefreshStore() token.RefreshStore { return refreshStore{s} }

type refreshStore struct{ s *Store }

func refreshKey(family, hash string) string { return refreshPrefix + family + "/" + hash }

func checkRefreshIDs(family, hash string) error {
	if family == "" || hash == "" || len(family) > 64 || len(hash) > 128 {
		return fmt.Errorf("%w: malformed refresh token id", token.ErrRefreshNotFound)
	}
	for _, s := range []string{family, hash} {
		for i := 0; i < len(s); i++ {
			if c := s[i]; c == '/' || c < 0x21 || c > 0x7e {
				return fmt.Errorf("%w: malformed refresh token id", token.ErrRefreshNotFound)
			}
		}
	}
	return nil
}

// GetRefresh implements token.RefreshStore.
func (r refreshStore) GetRefresh(ctx context.Context, family, hash string) (*token.RefreshRecord, error) {
	rec, _, err := r.get(ctx, family, hash)
	return rec, err
}

func (r refreshStore) get(ctx context.Context, family, hash string) (*token.RefreshRecord, *clientv3.GetResponse, error) {
	if err := checkRefreshIDs(family, hash); err != nil {
		return nil, nil, err
	}
	if err := r.s.checkOpen(); err != nil {
		return nil, nil, err
	}
	resp, err := r.s.cli.Get(ctx, refreshKey(family, hash))
	if err != nil {
		return nil, nil, fmt.Errorf("get refresh token: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return nil, resp, token.ErrRefreshNotFound
	}
	var rec token.RefreshRecord
	if err := json.Unmarshal(resp.Kvs[0].Value, &rec); err != nil {
		return nil, resp, fmt.Errorf("decode refresh token: %w", err)
	}
	return &rec, resp, nil
}

// CreateRefresh implements token.RefreshStore.
func (r refreshStore) CreateRefresh(ctx context.Context, rec *token.RefreshRecord) error {
	if err := checkRefreshIDs(rec.FamilyID, rec.Hash); err != nil {
		return err
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode refresh token: %w", err)
	}
	key := refreshKey(rec.FamilyID, rec.Hash)
	return r.s.withLease(ctx, rec.FamilyExpiresAt, time.Minute, func(id clientv3.LeaseID) error {
		resp, err := r.s.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
			Then(clientv3.OpPut(key, string(b), clientv3.WithLease(id))).Commit()
		if err != nil {
			return fmt.Errorf("create refresh token: %w", err)
		}
		if !resp.Succeeded {
			return fmt.Errorf("refresh token %s/%s exists", rec.FamilyID, rec.Hash)
		}
		return nil
	})
}

// RotateRefresh implements token.RefreshStore: one transaction marks the
// old record used and stores next, on the condition that the old record
// is unchanged since it was read unused, so exactly one of two concurrent
// rotations succeeds; the other sees ErrRefreshUsed.
func (r refreshStore) RotateRefresh(ctx context.Context, family, oldHash string, usedAt time.Time, next *token.RefreshRecord) error {
	if next.FamilyID != family || next.Hash == oldHash {
		return fmt.Errorf("refresh record %s/%s cannot succeed %s/%s", next.FamilyID, next.Hash, family, oldHash)
	}
	if err := checkRefreshIDs(family, next.Hash); err != nil {
		return err
	}
	nb, err := json.Marshal(next)
	if err != nil {
		return fmt.Errorf("encode refresh token: %w", err)
	}
	for attempt := 0; attempt < maxAttempts; attempt++ {
		old, resp, err := r.get(ctx, family, oldHash)
		if err != nil {
			return err
		}
		if !old.UsedAt.IsZero() {
			return token.ErrRefreshUsed
		}
		kv := resp.Kvs[0]
		old.UsedAt = usedAt
		ob, err := json.Marshal(old)
		if err != nil {
			return fmt.Errorf("encode refresh token: %w", err)
		}
		// Both records share the family's lease, so the family still
		// vanishes at once when it expires.
		var opts []clientv3.OpOption
		if kv.Lease != 0 {
			opts = append(opts, clientv3.WithLease(clientv3.LeaseID(kv.Lease)))
		}
		tr, err := r.s.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(string(kv.Key)), "=", kv.ModRevision),
				clientv3.Compare(clientv3.CreateRevision(refreshKey(family, next.Hash)), "=", 0)).
			Then(clientv3.OpPut(string(kv.Key), string(ob), opts...),
				clientv3.OpPut(refreshKey(family, next.Hash), string(nb), opts...)).Commit()
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			// The family's lease just ran out: the family is gone.
			return token.ErrRefreshNotFound
		}
		if err != nil {
			return fmt.Errorf("rotate refresh token: %w", err)
		}
		if tr.Succeeded {
			return nil
		}
		// Someone else changed the record: re-read to see whether it was
		// used (ErrRefreshUsed) or deleted (ErrRefreshNotFound).
	}
	return fmt.Errorf("%w: rotate refresh token", ErrConflict)
}

// RevokeFamily implements token.RefreshStore with one range delete.
func (r refreshStore) RevokeFamily(ctx context.Context, family string) error {
	if err := checkRefreshIDs(family, "x"); err != nil {
		return nil // no such family can exist
	}
	if err := r.s.checkOpen(); err != nil {
		return err
	}
	if _, err := r.s.cli.Delete(ctx, refreshPrefix+family+"/", clientv3.WithPrefix()); err != nil {
		return fmt.Errorf("revoke refresh family: %w", err)
	}
	return nil
}
