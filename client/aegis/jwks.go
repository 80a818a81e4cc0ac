package aegis

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	aegisv1 "github.com/photoncloud/photoncloud/api/aegis/v1"
)

const (
	// maxJWKSBytes bounds a JWKS response; Aegis's holds a handful of
	// 100-byte keys.
	maxJWKSBytes = 1 << 20
	// maxKeys bounds how many keys are kept from one JWKS.
	maxKeys = 64
)

var (
	// errRefreshLimited: an unknown kid asked for a fetch too soon after
	// the previous one.
	errRefreshLimited = errors.New("jwks refresh rate limited")
	errClosed         = errors.New("aegis client closed")
)

// keyFetcher fetches the current verification keys, by kid.
type keyFetcher func(ctx context.Context) (map[string]ed25519.PublicKey, error)

func httpKeyFetcher(client *http.Client, url string) keyFetcher {
	return func(ctx context.Context) (map[string]ed25519.PublicKey, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return nil, fmt.Errorf("fetch jwks: %w", err)
		}
		req.Header.Set("Accept", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return nil, fmt.Errorf("fetch jwks: %w", err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxJWKSBytes))
			return nil, fmt.Errorf("fetch jwks: %s returned %s", url, resp.Status)
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
		if err != nil {
			return nil, fmt.Errorf("fetch jwks: read body: %w", err)
		}
		if len(body) > maxJWKSBytes {
			return nil, fmt.Errorf("fetch jwks: response larger than %d bytes", maxJWKSBytes)
		}
		return parseJWKS(body)
	}
}

// parseJWKS decodes an RFC 7517 key set with go-jose and keeps the Ed25519
// signature keys. Keys of other types are skipped rather than failing the
// whole set, so that Aegis can one day publish keys of a second algorithm
// without breaking older services.
func parseJWKS(body []byte) (map[string]ed25519.PublicKey, error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("parse jwks: %w", err)
	}
	keys := make(map[string]ed25519.PublicKey)
	for _, raw := range doc.Keys {
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(raw); err != nil {
			continue
		}
		// A private key in a JWKS is a server bug; never use it.
		pub, ok := k.Key.(ed25519.PublicKey)
		if !ok || !usableKey(k.KeyID, k.Use, k.Algorithm) {
			continue
		}
		if err := addKey(keys, k.KeyID, pub); err != nil {
			return nil, err
		}
	}
	return keys, nil
}

func grpcKeyFetcher(c aegisv1.AuthnServiceClient) keyFetcher {
	return func(ctx context.Context) (map[string]ed25519.PublicKey, error) {
		resp, err := c.GetJWKS(ctx, &aegisv1.GetJWKSRequest{})
		if err != nil {
			return nil, fmt.Errorf("get jwks: %w", err)
		}
		keys := make(map[string]ed25519.PublicKey)
		for _, k := range resp.GetKeys() {
			if k.GetKty() != "OKP" || k.GetCrv() != "Ed25519" || !usableKey(k.GetKid(), k.GetUse(), k.GetAlg()) {
				continue
			}
			x, err := base64.RawURLEncoding.DecodeString(k.GetX())
			if err != nil || len(x) != ed25519.PublicKeySize {
				continue
			}
			if err := addKey(keys, k.GetKid(), ed25519.PublicKey(x)); err != nil {
				return nil, err
			}
		}
		return keys, nil
	}
}

func usableKey(kid, use, alg string) bool {
	return kid != "" && (use == "" || use == "sig") && (alg == "" || alg == string(jose.EdDSA))
}

func addKey(keys map[string]ed25519.PublicKey, kid string, pub ed25519.PublicKey) error {
	if _, dup := keys[kid]; dup {
		// Two keys under one kid: which one signed is ambiguous.
		return fmt.Errorf("parse jwks: kid %q appears twice", truncate(kid))
	}
	if len(keys) >= maxKeys {
		return fmt.Errorf("parse jwks: more than %d keys", maxKeys)
	}
	keys[kid] = pub
	return nil
}

// keySet is an immutable snapshot of the verification keys.
type keySet struct {
	keys map[string]ed25519.PublicKey
	// gen changes whenever the keys change; verified-token cache entries
	// are only trusted under the generation they were verified in, so a
	// key that disappears from the JWKS stops verifying at once.
	gen uint64
}

// fetchCall is one JWKS fetch that any number of callers wait for.
type fetchCall struct {
	done chan struct{}
	err  error // set before done is closed
}

// keyCache keeps Aegis's JWKS. It is fetched at start and every
// KeyRefreshInterval by a background goroutine, and on demand when a token
// names an unknown kid — at most once per MinKeyRefreshInterval, and only
// one fetch at a time (concurrent callers share it). Reads are lock-free.
type keyCache struct {
	fetch           keyFetcher
	now             func() time.Time
	refreshInterval time.Duration
	minInterval     time.Duration
	timeout         time.Duration
	log             *slog.Logger
	m               *metrics

	ctx    context.Context // cancelled by close; parent of every fetch
	cancel context.CancelFunc
	wg     sync.WaitGroup

	set atomic.Pointer[keySet] // nil until the first successful fetch

	mu          sync.Mutex
	inflight    *fetchCall
	lastAttempt time.Time
	closed      bool
}

func newKeyCache(fetch keyFetcher, cfg *Config, m *metrics) *keyCache {
	ctx, cancel := context.WithCancel(context.Background())
	k := &keyCache{
		fetch: fetch, now: cfg.Now,
		refreshInterval: cfg.KeyRefreshInterval, minInterval: cfg.MinKeyRefreshInterval, timeout: cfg.FetchTimeout,
		log: cfg.Logger, m: m, ctx: ctx, cancel: cancel,
	}
	k.wg.Add(1)
	go k.run()
	return k
}

// run fetches the keys now and then periodically, retrying failures with
// a capped exponential backoff so that a service started before Aegis gets
// its keys soon after Aegis comes up.
func (k *keyCache) run() {
	defer k.wg.Done()
	const minBackoff = time.Second
	delay, backoff := time.Duration(0), minBackoff
	for {
		t := time.NewTimer(delay)
		select {
		case <-k.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		err := k.refresh(k.ctx, false)
		switch {
		case k.ctx.Err() != nil:
			return
		case err == nil:
			delay, backoff = k.refreshInterval, minBackoff
		default:
			delay, backoff = backoff, min(backoff*2, k.refreshInterval)
		}
	}
}

// lookup returns the key for kid in the current set. ok is false if the
// kid is unknown; loaded is false if no set was ever fetched.
func (k *keyCache) lookup(kid string) (pub ed25519.PublicKey, gen uint64, ok, loaded bool) {
	s := k.set.Load()
	if s == nil {
		return nil, 0, false, false
	}
	pub, ok = s.keys[kid]
	return pub, s.gen, ok, true
}

// generation returns the current key set generation (0: none loaded).
func (k *keyCache) generation() uint64 {
	if s := k.set.Load(); s != nil {
		return s.gen
	}
	return 0
}

// refresh fetches the key set, or waits for the fetch already under way.
// An on-demand refresh (unknown kid) that comes sooner than minInterval
// after the previous attempt returns errRefreshLimited without fetching.
// The fetch runs in a goroutine of its own under the cache's context, so a
// caller that gives up (ctx done) does not cancel it for the others.
func (k *keyCache) refresh(ctx context.Context, onDemand bool) error {
	k.mu.Lock()
	if k.closed {
		k.mu.Unlock()
		return errClosed
	}
	call := k.inflight
	if call == nil {
		now := k.now()
		if onDemand && !k.lastAttempt.IsZero() && now.Sub(k.lastAttempt) < k.minInterval {
			k.mu.Unlock()
			k.m.refreshLimited()
			return errRefreshLimited
		}
		k.lastAttempt = now
		call = &fetchCall{done: make(chan struct{})}
		k.inflight = call
		k.wg.Add(1)
		go k.doFetch(call)
	}
	k.mu.Unlock()
	select {
	case <-call.done:
		return call.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (k *keyCache) doFetch(call *fetchCall) {
	defer k.wg.Done()
	ctx, cancel := context.WithTimeout(k.ctx, k.timeout)
	keys, err := k.fetch(ctx)
	cancel()
	if err == nil && len(keys) == 0 {
		// Aegis always publishes its active key; an empty set is a broken
		// response, and installing it would reject every token.
		err = errors.New("jwks holds no Ed25519 signing keys")
	}
	k.m.fetch(err)
	if err != nil {
		if k.ctx.Err() == nil {
			k.log.Warn("aegis jwks fetch failed", "err", err)
		}
	} else {
		k.install(keys)
	}
	k.mu.Lock()
	k.inflight = nil
	k.mu.Unlock()
	call.err = err
	close(call.done)
}

// install publishes keys, bumping the generation only if they changed.
// Only doFetch calls it, and only one doFetch runs at a time.
func (k *keyCache) install(keys map[string]ed25519.PublicKey) {
	old := k.set.Load()
	if old != nil && maps.EqualFunc(old.keys, keys, func(a, b ed25519.PublicKey) bool { return a.Equal(b) }) {
		return
	}
	next := &keySet{keys: keys, gen: 1}
	if old != nil {
		next.gen = old.gen + 1
	}
	k.set.Store(next)
	kids := make([]string, 0, len(keys))
	for kid := range keys {
		kids = append(kids, kid)
	}
	k.log.Info("aegis signing keys loaded", "kids", kids, "generation", next.gen)
}

// close stops the background goroutine and waits for fetches under way
// (their context is cancelled, so they end promptly).
func (k *keyCache) close() {
	k.mu.Lock()
	k.closed = true
	k.mu.Unlock()
	k.cancel()
	k.wg.Wait()
}

// truncate keeps attacker-chosen strings short in errors and logs.
func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
