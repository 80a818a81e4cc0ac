package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/etcd/api/v3/authpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"golang.org/x/crypto/bcrypt"
	"google.golang.org/grpc/metadata"
)

// quietPebble drops Pebble's chatter.
type quietPebble struct{}

func (quietPebble) Infof(string, ...any)  {}
func (quietPebble) Errorf(string, ...any) {}
func (quietPebble) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf(format, args...))
}

// fakeClock is a settable clock for token expiry.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// fixture is a store on an in-memory Pebble, applied to like kvserver does:
// one batch per entry, publish after commit.
type fixture struct {
	t     *testing.T
	db    *pebble.DB
	s     *Store
	clock *fakeClock
	index uint64
}

func newFixture(t *testing.T, tweak ...func(*Options)) *fixture {
	t.Helper()
	db, err := pebble.Open("", &pebble.Options{FS: vfs.NewMem(), Logger: quietPebble{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	f := &fixture{t: t, db: db, clock: &fakeClock{now: time.Unix(1_700_000_000, 0)}}
	f.s = f.open(tweak...)
	return f
}

// open creates a store on the fixture's database and loads it.
func (f *fixture) open(tweak ...func(*Options)) *Store {
	f.t.Helper()
	o := Options{BcryptCost: bcrypt.MinCost, Now: f.clock.Now, Logger: slog.New(slog.DiscardHandler)}
	for _, fn := range tweak {
		fn(&o)
	}
	s, err := New(o)
	if err != nil {
		f.t.Fatal(err)
	}
	if err := s.Load(f.db); err != nil {
		f.t.Fatal(err)
	}
	return s
}

// apply applies one request as the entry after the last, with identity ai
// (nil: none), running the apply-time permission check first.
func (f *fixture) apply(ai *AuthInfo, r *pb.InternalRaftRequest) (any, error) {
	f.t.Helper()
	f.index++
	r.Header = &pb.RequestHeader{ID: f.index}
	if ai != nil {
		r.Header.Username, r.Header.AuthRevision = ai.Username, ai.Revision
	}
	if err := f.s.CheckApply(r, nil); err != nil {
		return nil, err
	}
	b := f.db.NewBatch()
	defer b.Close()
	resp, commit, err := f.s.Apply(b, r, f.index)
	if err := b.Commit(pebble.Sync); err != nil {
		f.t.Fatal(err)
	}
	if commit != nil {
		commit()
	}
	return resp, err
}

// must applies r and fails the test on error.
func (f *fixture) must(ai *AuthInfo, r *pb.InternalRaftRequest) any {
	f.t.Helper()
	resp, err := f.apply(ai, r)
	if err != nil {
		f.t.Fatalf("apply %v: %v", r, err)
	}
	return resp
}

// fails applies r and checks that it fails with want.
func (f *fixture) fails(ai *AuthInfo, r *pb.InternalRaftRequest, want error) {
	f.t.Helper()
	_, err := f.apply(ai, r)
	if !errors.Is(err, want) {
		f.t.Fatalf("apply %v: err %v, want %v", r, err, want)
	}
}

// hashed is the base64 bcrypt hash of pw, as the API layer proposes it.
func (f *fixture) hashed(pw string) string {
	f.t.Helper()
	h, err := f.s.HashPassword(context.Background(), pw)
	if err != nil {
		f.t.Fatal(err)
	}
	return h
}

func (f *fixture) addUser(name, pw string, roles ...string) {
	f.t.Helper()
	f.must(f.root(), &pb.InternalRaftRequest{AuthUserAdd: &pb.AuthUserAddRequest{Name: name, HashedPassword: f.hashed(pw)}})
	for _, r := range roles {
		f.must(f.root(), &pb.InternalRaftRequest{AuthUserGrantRole: &pb.AuthUserGrantRoleRequest{User: name, Role: r}})
	}
}

func (f *fixture) addRole(name string, perms ...*authpb.Permission) {
	f.t.Helper()
	f.must(f.root(), &pb.InternalRaftRequest{AuthRoleAdd: &pb.AuthRoleAddRequest{Name: name}})
	for _, p := range perms {
		f.must(f.root(), &pb.InternalRaftRequest{AuthRoleGrantPermission: &pb.AuthRoleGrantPermissionRequest{Name: name, Perm: p}})
	}
}

// root is the root user's identity at the current revision.
func (f *fixture) root() *AuthInfo { return f.as(RootUser) }

func (f *fixture) as(user string) *AuthInfo {
	return &AuthInfo{Username: user, Revision: f.s.Revision()}
}

// enable creates root (with the root role) and enables auth.
func (f *fixture) enable() {
	f.t.Helper()
	f.addUser(RootUser, "rootpw", RootRole)
	f.must(f.root(), &pb.InternalRaftRequest{AuthEnable: &pb.AuthEnableRequest{}})
}

func perm(t authpb.Permission_Type, key, end string) *authpb.Permission {
	p := &authpb.Permission{PermType: t, Key: []byte(key)}
	if end != "" {
		p.RangeEnd = []byte(end)
	}
	return p
}

// tokenCtx is an incoming gRPC context carrying a token as clientv3 sends it.
func tokenCtx(token string) context.Context {
	return metadata.NewIncomingContext(context.Background(), metadata.Pairs("token", token))
}

// login authenticates user through the store as kvserver does and returns
// the token.
func (f *fixture) login(user, pw string) string {
	f.t.Helper()
	if _, err := f.s.CheckPassword(context.Background(), user, pw); err != nil {
		f.t.Fatalf("check password of %s: %v", user, err)
	}
	prefix, err := f.s.TokenPrefix()
	if err != nil {
		f.t.Fatal(err)
	}
	a := f.must(nil, &pb.InternalRaftRequest{Authenticate: &pb.InternalAuthenticateRequest{Name: user, SimpleToken: prefix}})
	resp, err := f.s.Token(a.(*Authenticated))
	if err != nil {
		f.t.Fatal(err)
	}
	return resp.Token
}
