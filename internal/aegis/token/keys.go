package token

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// KeyState is where a signing key is in its lifecycle.
type KeyState string

// Key lifecycle: staged → active → retired → removed.
const (
	// Staged keys are published in the JWKS (and verified) but do not sign
	// yet, so verifiers learn them before the first token needs them.
	Staged KeyState = "staged"
	// The one Active key signs new tokens.
	Active KeyState = "active"
	// Retired keys no longer sign and keep verifying until RemoveAfter,
	// when the last token they signed has expired.
	Retired KeyState = "retired"
)

// SealedKey is one signing key as a KeyStore stores it: public data in the
// clear, the private key only sealed with the KEK. It is plain data with
// JSON tags so the server can store a []SealedKey as one JSON value.
type SealedKey struct {
	// KID is the RFC 7638 JWK thumbprint (SHA-256, base64url) of the public
	// key: unique without coordination and checkable against PublicKey.
	KID   string   `json:"kid"`
	State KeyState `json:"state"`
	// PublicKey is the 32-byte Ed25519 public key.
	PublicKey []byte `json:"public_key"`
	// SealedSeed is the 32-byte Ed25519 seed sealed with AES-256-GCM under
	// the KEK named by KEKID (nonce || ciphertext || tag, bound to KID).
	// Dropped when the key retires: a retired key never signs again, so its
	// private half need not exist anywhere.
	SealedSeed []byte `json:"sealed_seed,omitempty"`
	KEKID      string `json:"kek_id,omitempty"`

	CreatedAt   time.Time `json:"created_at"`
	ActivatedAt time.Time `json:"activated_at,omitzero"`
	RetiredAt   time.Time `json:"retired_at,omitzero"`
	// RemoveAfter is when a retired key stops verifying and may be deleted.
	RemoveAfter time.Time `json:"remove_after,omitzero"`
}

// KeyStore persists the key set. The server implements it on one
// Chainfire key holding the JSON of the []SealedKey, using the key's
// mod revision for rev and a transaction comparing it for StoreKeys.
type KeyStore interface {
	// LoadKeys returns the stored key set and its revision; an empty set
	// with revision 0 if nothing is stored yet.
	LoadKeys(ctx context.Context) (keys []SealedKey, rev int64, err error)
	// StoreKeys replaces the key set if its revision is still rev (0: only
	// if nothing is stored) and returns the new revision, which must be
	// greater than every earlier one. If the revision moved it returns an
	// error wrapping ErrKeyConflict and stores nothing.
	StoreKeys(ctx context.Context, keys []SealedKey, rev int64) (newRev int64, err error)
}

// KeyInfo describes a key without its private half, for admin APIs,
// metrics and logs.
type KeyInfo struct {
	KID         string
	State       KeyState
	CreatedAt   time.Time
	ActivatedAt time.Time
	RetiredAt   time.Time
	RemoveAfter time.Time
}

// Keyring holds the signing keys of one Aegis replica: the decrypted active
// key for the Issuer, the public keys for the Verifier and the JWKS. All
// replicas share one key set through the KeyStore; a replica picks up
// another's rotation when the server calls Reload from its Chainfire watch.
// Reads (signing, verification, JWKS) are lock-free.
type Keyring struct {
	store KeyStore
	cfg   Config
	seal  *KEK            // seals new keys
	keks  map[string]*KEK // unseals, by id: seal plus any old KEKs

	mu   sync.Mutex // serializes load-modify-store and view installs
	view atomic.Pointer[keyView]
}

// keyView is an immutable snapshot of the key set.
type keyView struct {
	rev     int64
	keys    []SealedKey
	byKID   map[string]*pubKey
	signKID string
	signer  jose.Signer
}

type pubKey struct {
	key         ed25519.PublicKey
	state       KeyState
	removeAfter time.Time // zero unless retired
}

// usable reports whether the key may verify a token at now.
func (k *pubKey) usable(now time.Time) bool {
	return k.state != Retired || now.Before(k.removeAfter)
}

// OpenKeyring loads the key set from store, creating the first active and
// staged keys if the store is empty. kek seals new keys; oldKEKs (from a
// KEK rotation) can still unseal existing ones until Reseal has run.
func OpenKeyring(ctx context.Context, store KeyStore, cfg Config, kek *KEK, oldKEKs ...*KEK) (*Keyring, error) {
	cfg, err := cfg.prepared()
	if err != nil {
		return nil, err
	}
	if kek == nil {
		return nil, errors.New("keyring needs a key-encryption key")
	}
	r := &Keyring{store: store, cfg: cfg, seal: kek, keks: map[string]*KEK{kek.ID(): kek}}
	for _, k := range oldKEKs {
		if k != nil {
			r.keks[k.ID()] = k
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	// Two replicas starting on an empty store race to create the first
	// keys; the loser sees ErrKeyConflict and loads the winner's.
	for attempt := 0; ; attempt++ {
		keys, rev, err := store.LoadKeys(ctx)
		if err != nil {
			return nil, fmt.Errorf("load signing keys: %w", err)
		}
		if len(keys) > 0 {
			if err := r.installLocked(keys, rev); err != nil {
				return nil, err
			}
			return r, nil
		}
		now := cfg.Now()
		active, err := r.newKey(Active, now)
		if err != nil {
			return nil, err
		}
		staged, err := r.newKey(Staged, now)
		if err != nil {
			return nil, err
		}
		keys = []SealedKey{active, staged}
		newRev, err := store.StoreKeys(ctx, keys, rev)
		if errors.Is(err, ErrKeyConflict) && attempt < 3 {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("store first signing keys: %w", err)
		}
		if err := r.installLocked(keys, newRev); err != nil {
			return nil, err
		}
		return r, nil
	}
}

// Reload re-reads the key set from the store. The server calls it when its
// Chainfire watch reports a change of the key set, so a rotation on one
// replica reaches all others.
func (r *Keyring) Reload(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	keys, rev, err := r.store.LoadKeys(ctx)
	if err != nil {
		return fmt.Errorf("load signing keys: %w", err)
	}
	return r.installLocked(keys, rev)
}

// Rotate moves the staged key to active, the active key to retired, drops
// retired keys whose time is up and creates a new staged key, all in one
// conditional store. No valid token fails because of it: the old active key
// keeps verifying for Config.retention, and the new active key was already
// published (and is accepted by replicas that still see it as staged). It
// returns the new active key id. If another replica changed the key set
// meanwhile it returns ErrKeyConflict and changes nothing; the caller
// should Reload and decide whether to rotate again.
//
// The guarantee assumes rotations are spaced further apart than the time
// it takes every replica (watch delay) and JWKS client (cache max-age, or
// its refresh on an unknown kid) to see the new staged key; rotate on the
// order of days, not seconds.
func (r *Keyring) Rotate(ctx context.Context) (string, error) {
	var activeKID string
	err := r.modify(ctx, func(keys []SealedKey, now time.Time) ([]SealedKey, error) {
		var next []SealedKey
		promoted := false
		for _, k := range keys {
			switch k.State {
			case Retired:
				if now.Before(k.RemoveAfter) {
					next = append(next, k)
				}
			case Active:
				k.State = Retired
				k.RetiredAt = now
				k.RemoveAfter = now.Add(r.cfg.retention())
				k.SealedSeed, k.KEKID = nil, ""
				next = append(next, k)
			case Staged:
				if !promoted {
					k.State = Active
					k.ActivatedAt = now
					activeKID = k.KID
					promoted = true
					next = append(next, k)
				}
			}
		}
		if !promoted {
			// No staged key (a store written by hand): activate a fresh one.
			k, err := r.newKey(Active, now)
			if err != nil {
				return nil, err
			}
			activeKID = k.KID
			next = append(next, k)
		}
		staged, err := r.newKey(Staged, now)
		if err != nil {
			return nil, err
		}
		return append(next, staged), nil
	})
	if err != nil {
		return "", err
	}
	return activeKID, nil
}

// Prune deletes retired keys whose RemoveAfter has passed. Verification
// already ignores them; Prune only keeps the stored set and the JWKS small.
// Rotate prunes too, so Prune is for deployments that rotate rarely.
func (r *Keyring) Prune(ctx context.Context) (removed int, err error) {
	err = r.modify(ctx, func(keys []SealedKey, now time.Time) ([]SealedKey, error) {
		next := slices.DeleteFunc(slices.Clone(keys), func(k SealedKey) bool {
			return k.State == Retired && !now.Before(k.RemoveAfter)
		})
		removed = len(keys) - len(next)
		if removed == 0 {
			return nil, nil
		}
		return next, nil
	})
	return removed, err
}

// Reseal re-encrypts every sealed key with the current KEK. Run it after
// starting with a new KEK and the old one in oldKEKs; afterwards the old
// KEK is no longer needed.
func (r *Keyring) Reseal(ctx context.Context) (resealed int, err error) {
	err = r.modify(ctx, func(keys []SealedKey, _ time.Time) ([]SealedKey, error) {
		next := slices.Clone(keys)
		resealed = 0
		for i := range next {
			k := &next[i]
			if len(k.SealedSeed) == 0 || k.KEKID == r.seal.ID() {
				continue
			}
			seed, err := r.unseal(k)
			if err != nil {
				return nil, err
			}
			k.SealedSeed, k.KEKID = r.seal.seal(k.KID, seed), r.seal.ID()
			clear(seed)
			resealed++
		}
		if resealed == 0 {
			return nil, nil
		}
		return next, nil
	})
	return resealed, err
}

// modify loads the latest key set, applies f and stores the result if f
// returned one (nil means no change), then installs it.
func (r *Keyring) modify(ctx context.Context, f func([]SealedKey, time.Time) ([]SealedKey, error)) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	keys, rev, err := r.store.LoadKeys(ctx)
	if err != nil {
		return fmt.Errorf("load signing keys: %w", err)
	}
	next, err := f(keys, r.cfg.Now())
	if err != nil {
		return err
	}
	if next == nil {
		return r.installLocked(keys, rev)
	}
	// Check the new set before storing it, so a bug can never persist a key
	// set that no replica can load.
	if _, err := r.buildView(next, 0); err != nil {
		return err
	}
	newRev, err := r.store.StoreKeys(ctx, next, rev)
	if err != nil {
		return fmt.Errorf("store signing keys: %w", err)
	}
	return r.installLocked(next, newRev)
}

// installLocked makes keys the current view unless a newer revision is
// already installed (a Reload racing with a watch-triggered Reload).
func (r *Keyring) installLocked(keys []SealedKey, rev int64) error {
	if cur := r.view.Load(); cur != nil && rev < cur.rev {
		return nil
	}
	v, err := r.buildView(keys, rev)
	if err != nil {
		return err
	}
	r.view.Store(v)
	return nil
}

// buildView checks a key set and prepares it for use. It rejects a set
// without exactly one active key, duplicate or forged key ids, and sealed
// seeds that do not unseal to the recorded public key, so corrupted store
// contents fail loudly at load instead of producing unverifiable tokens.
func (r *Keyring) buildView(keys []SealedKey, rev int64) (*keyView, error) {
	v := &keyView{rev: rev, keys: cloneKeys(keys), byKID: make(map[string]*pubKey, len(keys))}
	staged := 0
	for i := range v.keys {
		k := &v.keys[i]
		if len(k.PublicKey) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("signing key %q: public key has %d bytes", k.KID, len(k.PublicKey))
		}
		pub := ed25519.PublicKey(slices.Clone(k.PublicKey))
		if kid, err := thumbprint(pub); err != nil || kid != k.KID {
			return nil, fmt.Errorf("signing key %q: key id does not match the public key", k.KID)
		}
		if _, dup := v.byKID[k.KID]; dup {
			return nil, fmt.Errorf("signing key %q appears twice", k.KID)
		}
		pk := &pubKey{key: pub, state: k.State}
		switch k.State {
		case Active:
			if v.signer != nil {
				return nil, errors.New("signing key set has more than one active key")
			}
			signer, err := r.signerFor(k)
			if err != nil {
				return nil, err
			}
			v.signer, v.signKID = signer, k.KID
		case Staged:
			staged++
			if staged > 1 {
				return nil, errors.New("signing key set has more than one staged key")
			}
			// Unseal now so that a wrong KEK fails at load, not at the next
			// rotation.
			seed, err := r.unseal(k)
			if err != nil {
				return nil, err
			}
			clear(seed)
		case Retired:
			if k.RemoveAfter.IsZero() {
				return nil, fmt.Errorf("signing key %q is retired without a removal time", k.KID)
			}
			pk.removeAfter = k.RemoveAfter
		default:
			return nil, fmt.Errorf("signing key %q has unknown state %q", k.KID, k.State)
		}
		v.byKID[k.KID] = pk
	}
	if v.signer == nil {
		return nil, errors.New("signing key set has no active key")
	}
	return v, nil
}

func (r *Keyring) signerFor(k *SealedKey) (jose.Signer, error) {
	seed, err := r.unseal(k)
	if err != nil {
		return nil, err
	}
	defer clear(seed)
	priv := ed25519.NewKeyFromSeed(seed)
	if !priv.Public().(ed25519.PublicKey).Equal(ed25519.PublicKey(k.PublicKey)) {
		return nil, fmt.Errorf("signing key %q: sealed seed does not match the public key", k.KID)
	}
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.EdDSA, Key: jose.JSONWebKey{Key: priv, KeyID: k.KID}},
		(&jose.SignerOptions{}).WithType(accessTokenType),
	)
	if err != nil {
		return nil, fmt.Errorf("signing key %q: %w", k.KID, err)
	}
	return signer, nil
}

func (r *Keyring) unseal(k *SealedKey) ([]byte, error) {
	kek, ok := r.keks[k.KEKID]
	if !ok {
		return nil, fmt.Errorf("signing key %q: sealed with key-encryption key %q, which is not loaded: %w", k.KID, k.KEKID, ErrUnseal)
	}
	seed, err := kek.unseal(k.KID, k.SealedSeed)
	if err != nil {
		return nil, fmt.Errorf("signing key %q: %w", k.KID, err)
	}
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("signing key %q: %w: seed has %d bytes", k.KID, ErrUnseal, len(seed))
	}
	return seed, nil
}

// newKey generates an Ed25519 key and seals its seed.
func (r *Keyring) newKey(state KeyState, now time.Time) (SealedKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return SealedKey{}, fmt.Errorf("generate signing key: %w", err)
	}
	kid, err := thumbprint(pub)
	if err != nil {
		return SealedKey{}, err
	}
	k := SealedKey{
		KID: kid, State: state, PublicKey: pub,
		SealedSeed: r.seal.seal(kid, priv.Seed()), KEKID: r.seal.ID(),
		CreatedAt: now,
	}
	clear(priv)
	if state == Active {
		k.ActivatedAt = now
	}
	return k, nil
}

func thumbprint(pub ed25519.PublicKey) (string, error) {
	tp, err := (&jose.JSONWebKey{Key: pub}).Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("key thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(tp), nil
}

// ActiveKID returns the id of the key that signs new tokens.
func (r *Keyring) ActiveKID() string { return r.view.Load().signKID }

// Revision returns the store revision of the installed key set.
func (r *Keyring) Revision() int64 { return r.view.Load().rev }

// Keys describes the installed keys, active first.
func (r *Keyring) Keys() []KeyInfo {
	return r.view.Load().infos()
}

func (v *keyView) infos() []KeyInfo {
	out := make([]KeyInfo, 0, len(v.keys))
	for _, k := range v.keys {
		out = append(out, KeyInfo{KID: k.KID, State: k.State, CreatedAt: k.CreatedAt, ActivatedAt: k.ActivatedAt, RetiredAt: k.RetiredAt, RemoveAfter: k.RemoveAfter})
	}
	slices.SortStableFunc(out, func(a, b KeyInfo) int { return stateOrder(a.State) - stateOrder(b.State) })
	return out
}

func stateOrder(s KeyState) int {
	switch s {
	case Active:
		return 0
	case Staged:
		return 1
	}
	return 2
}

// JWKS returns the JSON Web Key Set (RFC 7517) served at
// /.well-known/jwks.json: every key that currently verifies (active,
// staged, and retired keys until RemoveAfter) as an OKP/Ed25519 key with
// kid, use "sig" and alg "EdDSA". Only public keys ever appear.
func (r *Keyring) JWKS() []byte {
	now := r.cfg.Now()
	v := r.view.Load()
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{}}
	for _, info := range v.infos() {
		pk := v.byKID[info.KID]
		if !pk.usable(now) {
			continue
		}
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: pk.key, KeyID: info.KID, Use: "sig", Algorithm: string(jose.EdDSA)})
	}
	b, err := json.Marshal(set)
	if err != nil {
		// Marshalling an Ed25519 public key cannot fail; a failure here is
		// a programming error, not a runtime condition.
		panic(fmt.Sprintf("marshal JWKS: %v", err))
	}
	return b
}

// lookup returns the verification key for kid if it may verify at now.
func (r *Keyring) lookup(kid string, now time.Time) (ed25519.PublicKey, bool) {
	pk, ok := r.view.Load().byKID[kid]
	if !ok || !pk.usable(now) {
		return nil, false
	}
	return pk.key, true
}

// signer returns the active key's signer and id.
func (r *Keyring) signer() (jose.Signer, string) {
	v := r.view.Load()
	return v.signer, v.signKID
}

// MemKeyStore is an in-memory KeyStore for tests and single-process
// tools; it stores copies, like a real store would.
type MemKeyStore struct {
	mu   sync.Mutex
	keys []SealedKey
	rev  int64
}

// LoadKeys implements KeyStore.
func (s *MemKeyStore) LoadKeys(context.Context) ([]SealedKey, int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return cloneKeys(s.keys), s.rev, nil
}

// StoreKeys implements KeyStore.
func (s *MemKeyStore) StoreKeys(_ context.Context, keys []SealedKey, rev int64) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rev != s.rev {
		return 0, fmt.Errorf("store at revision %d, caller expected %d: %w", s.rev, rev, ErrKeyConflict)
	}
	s.keys = cloneKeys(keys)
	s.rev++
	return s.rev, nil
}

// cloneKeys deep-copies keys so that no caller shares byte slices with the
// store.
func cloneKeys(keys []SealedKey) []SealedKey {
	out := slices.Clone(keys)
	for i := range out {
		out[i].PublicKey = slices.Clone(out[i].PublicKey)
		out[i].SealedSeed = slices.Clone(out[i].SealedSeed)
	}
	return out
}
