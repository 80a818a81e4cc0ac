// Package auth is Chainfire's authentication and authorization state
// machine, with etcd v3's semantics: users (bcrypt-hashed password or none,
// roles), roles (key-range permissions READ, WRITE or READWRITE on a key, a
// range or a prefix), the built-in root user and role, the enabled flag and
// the auth revision that every change bumps.
//
// The state is replicated: kvserver applies committed auth requests with
// Apply, which writes the change into the entry's Pebble batch (keys under
// the 'u' prefix) and returns a function that publishes the new in-memory
// state once the batch is committed. Permission checks read an immutable
// snapshot of that state, with per-user interval lists merged from the
// user's roles, so they take no lock.
//
// Clients prove who they are with a token from Authenticate ("simple": a
// random string known to every member through the replicated Authenticate
// entry; "jwt": a signed JSON Web Token) or, with --client-cert-auth, with
// the common name of their verified TLS certificate.
package auth

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"runtime"
	"slices"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/etcd/api/v3/authpb"
	"golang.org/x/crypto/bcrypt"
	"google.golang.org/protobuf/proto"
)

// The errors of etcd's auth store, with etcd's messages; the gRPC layer maps
// each to the rpctypes error clients match on.
var (
	ErrRootUserNotExist     = errors.New("auth: root user does not exist")
	ErrRootRoleNotExist     = errors.New("auth: root user does not have root role")
	ErrUserAlreadyExist     = errors.New("auth: user already exists")
	ErrUserEmpty            = errors.New("auth: user name is empty")
	ErrUserNotFound         = errors.New("auth: user not found")
	ErrRoleAlreadyExist     = errors.New("auth: role already exists")
	ErrRoleNotFound         = errors.New("auth: role not found")
	ErrRoleEmpty            = errors.New("auth: role name is empty")
	ErrPermissionNotGiven   = errors.New("auth: permission not given")
	ErrAuthFailed           = errors.New("auth: authentication failed, invalid user ID or password")
	ErrNoPasswordUser       = errors.New("auth: authentication failed, password was given for no password user")
	ErrPermissionDenied     = errors.New("auth: permission denied")
	ErrRoleNotGranted       = errors.New("auth: role is not granted to the user")
	ErrPermissionNotGranted = errors.New("auth: permission is not granted to the role")
	ErrAuthNotEnabled       = errors.New("auth: authentication is not enabled")
	ErrAuthOldRevision      = errors.New("auth: revision in header is old")
	ErrInvalidAuthToken     = errors.New("auth: invalid auth token")
	ErrInvalidAuthOpts      = errors.New("auth: invalid auth options")
	ErrInvalidAuthMgmt      = errors.New("auth: invalid auth management")
	ErrInvalidAuthMethod    = errors.New("auth: invalid auth signature method")
	ErrMissingKey           = errors.New("auth: missing key data")
	ErrKeyMismatch          = errors.New("auth: public and private keys don't match")
	ErrVerifyOnly           = errors.New("auth: token signing attempted with verify-only key")
)

// RootUser and RootRole are the built-in administrator names: a user with
// the root role may do anything, and auth can only be enabled while the
// root user exists and has that role.
const (
	RootUser = "root"
	RootRole = "root"
)

// Defaults of the options, as etcd's.
const (
	DefaultTokenSpec  = "simple"
	DefaultTokenTTL   = 300 * time.Second
	DefaultBcryptCost = bcrypt.DefaultCost
)

// Pebble keys of the auth state, all under the 'u' prefix, which no other
// part of the member's database uses.
var (
	keyEnabled  = []byte("ue")
	keyRevision = []byte("uv")
	userPrefix  = []byte("uu")
	rolePrefix  = []byte("ur")
	spaceStart  = []byte("u")
	spaceEnd    = []byte("v")
)

func userKey(name string) []byte { return append(slices.Clip(userPrefix), name...) }
func roleKey(name string) []byte { return append(slices.Clip(rolePrefix), name...) }

// AuthInfo is who a request comes from: a user name and the auth revision
// the credentials were checked at.
type AuthInfo struct {
	Username string
	Revision uint64
}

// Options configure a Store.
type Options struct {
	// TokenSpec is etcd's --auth-token: "simple", or
	// "jwt,pub-key=FILE,priv-key=FILE,sign-method=RS256,ttl=5m". Default "simple".
	TokenSpec string
	// TokenTTL is how long an unused simple token stays valid. Default 300s.
	TokenTTL time.Duration
	// BcryptCost is the cost of password hashes made on this member. Default 10.
	BcryptCost int
	// ClientCertAuth makes the common name of a verified client certificate
	// the user of requests that carry no token.
	ClientCertAuth bool
	// AppliedIndex is the member's applied raft index. A simple token names
	// the entry that created it, so a member that has not applied it yet
	// waits for it (a little) instead of refusing the token.
	AppliedIndex func() uint64
	// Now is the clock of token expiry. Default time.Now.
	Now func() time.Time
	// Logger receives auth events. Default slog.Default().
	Logger *slog.Logger
}

// state is one immutable version of the auth data. Apply builds a new one;
// readers load the current one atomically.
type state struct {
	enabled  bool
	revision uint64
	users    map[string]*authpb.User
	roles    map[string]*authpb.Role
	perms    map[string]*userPerms // merged permissions of every user
}

// Store holds the auth state of one member.
type Store struct {
	opts   Options
	lg     *slog.Logger
	cur    atomic.Pointer[state]
	tokens tokenProvider
	// bcryptSlots bounds the password hashes and checks running at once, so
	// a burst of Authenticate calls cannot take every CPU.
	bcryptSlots chan struct{}
}

// New creates an empty store (auth disabled, revision 1) with the token
// provider that opts.TokenSpec names. Call Load to read persisted state.
func New(opts Options) (*Store, error) {
	if opts.TokenSpec == "" {
		opts.TokenSpec = DefaultTokenSpec
	}
	if opts.TokenTTL <= 0 {
		opts.TokenTTL = DefaultTokenTTL
	}
	if opts.BcryptCost == 0 {
		opts.BcryptCost = DefaultBcryptCost
	}
	if opts.BcryptCost < bcrypt.MinCost || opts.BcryptCost > bcrypt.MaxCost {
		return nil, fmt.Errorf("bcrypt cost %d out of range [%d, %d]", opts.BcryptCost, bcrypt.MinCost, bcrypt.MaxCost)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.AppliedIndex == nil {
		opts.AppliedIndex = func() uint64 { return math.MaxUint64 }
	}
	s := &Store{opts: opts, lg: opts.Logger, bcryptSlots: make(chan struct{}, max(1, runtime.GOMAXPROCS(0)/2))}
	tp, err := newTokenProvider(opts)
	if err != nil {
		return nil, err
	}
	s.tokens = tp
	s.cur.Store(&state{revision: 1, users: map[string]*authpb.User{}, roles: map[string]*authpb.Role{}, perms: map[string]*userPerms{}})
	return s, nil
}

// ValidateTokenSpec reports whether spec is a usable --auth-token value,
// loading the JWT keys it names.
func ValidateTokenSpec(spec string) error {
	_, err := newTokenProvider(Options{TokenSpec: spec, TokenTTL: DefaultTokenTTL, Now: time.Now, Logger: slog.New(slog.DiscardHandler)})
	return err
}

func (s *Store) load() *state { return s.cur.Load() }

// IsAuthEnabled reports whether authentication is on.
func (s *Store) IsAuthEnabled() bool { return s.load().enabled }

// Revision is the auth revision: it grows with every change of users,
// roles, permissions or of the enabled flag.
func (s *Store) Revision() uint64 { return s.load().revision }

// BcryptCost is the cost of the password hashes this member makes.
func (s *Store) BcryptCost() int { return s.opts.BcryptCost }

// Load replaces the in-memory state with the one persisted in r: at start,
// and after a raft snapshot replaced the database.
func (s *Store) Load(r pebble.Reader) error {
	st := &state{revision: 1, users: map[string]*authpb.User{}, roles: map[string]*authpb.Role{}}
	if v, err := get(r, keyEnabled); err != nil {
		return err
	} else if len(v) == 1 {
		st.enabled = v[0] == 1
	}
	if v, err := get(r, keyRevision); err != nil {
		return err
	} else if v != nil {
		if len(v) != 8 {
			return fmt.Errorf("corrupt auth revision record of %d bytes", len(v))
		}
		st.revision = binary.BigEndian.Uint64(v)
	}
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: spaceStart, UpperBound: spaceEnd})
	if err != nil {
		return err
	}
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		v, err := it.ValueAndErr()
		if err != nil {
			_ = it.Close()
			return err
		}
		switch {
		case bytes.HasPrefix(k, userPrefix):
			u := &authpb.User{}
			if err := proto.Unmarshal(v, u); err != nil {
				_ = it.Close()
				return fmt.Errorf("decode auth user %q: %w", k[len(userPrefix):], err)
			}
			st.users[string(u.Name)] = u
		case bytes.HasPrefix(k, rolePrefix):
			r := &authpb.Role{}
			if err := proto.Unmarshal(v, r); err != nil {
				_ = it.Close()
				return fmt.Errorf("decode auth role %q: %w", k[len(rolePrefix):], err)
			}
			st.roles[string(r.Name)] = r
		}
	}
	if err := it.Close(); err != nil {
		return err
	}
	st.perms = mergePerms(st)
	s.cur.Store(st)
	if !st.enabled {
		s.tokens.disable()
	}
	return nil
}

// get reads one key; a missing key is nil without error.
func get(r pebble.Reader, key []byte) ([]byte, error) {
	v, closer, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %q: %w", key, err)
	}
	defer func(c io.Closer) { _ = c.Close() }(closer)
	return bytes.Clone(v), nil
}

// UserNames lists the users in name order.
func (st *state) userNames() []string {
	names := make([]string, 0, len(st.users))
	for n := range st.users {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

func (st *state) roleNames() []string {
	names := make([]string, 0, len(st.roles))
	for n := range st.roles {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// hasRootRole reports whether u has the root role. u.Roles is kept sorted.
func hasRootRole(u *authpb.User) bool {
	_, found := slices.BinarySearch(u.Roles, RootRole)
	return found
}

// HasRole reports whether user exists and has role.
func (s *Store) HasRole(user, role string) bool {
	u := s.load().users[user]
	return u != nil && slices.Contains(u.Roles, role)
}
