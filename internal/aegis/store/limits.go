package store

import (
	"context"
	"fmt"
	"strconv"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/photoncloud/photoncloud/internal/aegis/password"
)

// loginLimitPrefix holds the per-user login buckets every replica shares
// (password.SharedBuckets). It is outside the watched /aegis/iam/, so the
// replicas' indexes never see these short-lived keys.
const loginLimitPrefix = "/aegis/limits/login/"

// takeRetries bounds how often a take starts over after another replica
// changed the same bucket between its read and its write.
const takeRetries = 16

// LoginBuckets returns the login rate limiter's per-user buckets, kept in
// Chainfire so that every replica spends from the same ones.
func (s *Store) LoginBuckets() password.SharedBuckets { return loginBuckets{s} }

type loginBuckets struct{ s *Store }

// Take implements password.SharedBuckets. A bucket is one key holding its
// theoretical arrival time in Unix nanoseconds, leased to expire once the
// bucket would be full again, so idle buckets cost nothing. The write
// compares the key's mod revision with the one read: two replicas taking
// the last attempt at once cannot both get it.
func (b loginBuckets) Take(ctx context.Context, key string, r password.Rate, now time.Time) (time.Duration, error) {
	s := b.s
	if err := s.checkOpen(); err != nil {
		return 0, err
	}
	k := loginLimitPrefix + key
	for range takeRetries {
		resp, err := s.cli.Get(ctx, k)
		if err != nil {
			return 0, fmt.Errorf("read login bucket: %w", err)
		}
		var tat time.Time
		var mod int64
		if len(resp.Kvs) == 1 {
			kv := resp.Kvs[0]
			mod = kv.ModRevision
			if ns, err := strconv.ParseInt(string(kv.Value), 10, 64); err == nil {
				tat = time.Unix(0, ns)
			} // else a damaged value counts as a full bucket and is overwritten
		}
		if wait := r.Wait(tat, now); wait > 0 {
			return wait, nil
		}
		next := r.Take(tat, now)
		var won bool
		err = s.withLease(ctx, next, time.Minute, func(lease clientv3.LeaseID) error {
			tr, err := s.cli.Txn(ctx).
				If(clientv3.Compare(clientv3.ModRevision(k), "=", mod)).
				Then(clientv3.OpPut(k, strconv.FormatInt(next.UnixNano(), 10), clientv3.WithLease(lease))).
				Commit()
			if err == nil {
				won = tr.Succeeded
			}
			return err
		})
		if err != nil {
			return 0, fmt.Errorf("write login bucket: %w", err)
		}
		if won {
			return 0, nil
		}
	}
	return 0, fmt.Errorf("login bucket: %d concurrent changes in a row", takeRetries)
}

// Reset implements password.SharedBuckets.
func (b loginBuckets) Reset(ctx context.Context, key string) error {
	if err := b.s.checkOpen(); err != nil {
		return err
	}
	if _, err := b.s.cli.Delete(ctx, loginLimitPrefix+key); err != nil {
		return fmt.Errorf("reset login bucket: %w", err)
	}
	return nil
}
