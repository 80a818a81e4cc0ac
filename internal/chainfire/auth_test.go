package chainfire

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/metadata"
)

// userClient is a clientv3 client of member i logged in as user.
func (c *testCluster) userClient(i int, user, password string) *clientv3.Client {
	c.t.Helper()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints: []string{c.members[i].ClientAddr()}, DialTimeout: 5 * time.Second,
		Username: user, Password: password, Logger: zap.NewNop(),
	})
	if err != nil {
		c.t.Fatalf("client of member %d as %s: %v", i, user, err)
	}
	c.t.Cleanup(func() { _ = cli.Close() })
	return cli
}

// setUpAuth creates root, a role "ro" reading app/ and a user alice with
// it, writes app/x, and enables auth, through an anonymous client.
func setUpAuth(ctx context.Context, t *testing.T, cli *clientv3.Client) {
	t.Helper()
	steps := []func() error{
		func() error { _, err := cli.UserAdd(ctx, "root", "rootpw"); return err },
		func() error { _, err := cli.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := cli.RoleAdd(ctx, "ro"); return err },
		func() error {
			_, err := cli.RoleGrantPermission(ctx, "ro", "app/", clientv3.GetPrefixRangeEnd("app/"), clientv3.PermissionType(clientv3.PermRead))
			return err
		},
		func() error { _, err := cli.UserAdd(ctx, "alice", "alicepw"); return err },
		func() error { _, err := cli.UserGrantRole(ctx, "alice", "ro"); return err },
		func() error { _, err := cli.Put(ctx, "app/x", "1"); return err },
		func() error { _, err := cli.AuthEnable(ctx); return err },
	}
	for i, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("auth setup step %d: %v", i, err)
		}
	}
}

// TestAuthCluster: a user with read-only permission gets etcd's permission
// error on a write and the data stays; a token issued by one member works
// on the others; permission changes apply everywhere at once; disabling
// auth opens the store again.
func TestAuthCluster(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *Config) { cfg.BcryptCost = 4 })
	c.leader()
	ctx := ctxFor(t)
	setUpAuth(ctx, t, c.client(0))

	alice := c.userClient(1, "alice", "alicepw")
	if got, err := alice.Get(ctx, "app/x"); err != nil || len(got.Kvs) != 1 || string(got.Kvs[0].Value) != "1" {
		t.Fatalf("alice reads app/x: %v %v", got, err)
	}
	if _, err := alice.Put(ctx, "app/x", "2"); !errors.Is(err, rpctypes.ErrPermissionDenied) {
		t.Fatalf("alice writes app/x: %v, want %v", err, rpctypes.ErrPermissionDenied)
	}
	if _, err := alice.Get(ctx, "other"); !errors.Is(err, rpctypes.ErrPermissionDenied) {
		t.Fatalf("alice reads outside app/: %v", err)
	}
	// A txn whose compare reads app/x but whose failure branch writes is refused as a whole.
	_, err := alice.Txn(ctx).If(clientv3.Compare(clientv3.Value("app/x"), "=", "1")).
		Then(clientv3.OpGet("app/x")).Else(clientv3.OpPut("app/x", "3")).Commit()
	if !errors.Is(err, rpctypes.ErrPermissionDenied) {
		t.Fatalf("alice's txn with a write in the other branch: %v", err)
	}
	root := c.userClient(2, "root", "rootpw")
	if got, err := root.Get(ctx, "app/x"); err != nil || string(got.Kvs[0].Value) != "1" || got.Kvs[0].Version != 1 {
		t.Fatalf("app/x after refused writes: %v %v", got, err)
	}
	// Anonymous requests are refused with etcd's error.
	anon := c.client(2)
	if _, err := anon.Put(ctx, "app/x", "4"); !errors.Is(err, rpctypes.ErrUserEmpty) {
		t.Fatalf("anonymous put: %v, want %v", err, rpctypes.ErrUserEmpty)
	}
	if _, err := anon.Get(ctx, "app/x"); !errors.Is(err, rpctypes.ErrUserEmpty) {
		t.Fatalf("anonymous get: %v", err)
	}
	// Non-admins may not manage auth or the cluster.
	if _, err := alice.UserList(ctx); !errors.Is(err, rpctypes.ErrPermissionDenied) {
		t.Fatalf("alice lists users: %v", err)
	}
	if _, err := alice.Compact(ctx, 1); !errors.Is(err, rpctypes.ErrPermissionDenied) {
		t.Fatalf("alice compacts: %v", err)
	}

	// A token issued through member 0 works on member 2 (the Authenticate
	// entry taught every member the simple token).
	ac := pb.NewAuthClient(c.client(0).ActiveConnection())
	tok, err := ac.Authenticate(ctx, &pb.AuthenticateRequest{Name: "alice", Password: "alicepw"})
	if err != nil {
		t.Fatal(err)
	}
	kv2 := pb.NewKVClient(anon.ActiveConnection())
	tctx := metadata.AppendToOutgoingContext(ctx, rpctypes.TokenFieldNameGRPC, tok.Token)
	if got, err := kv2.Range(tctx, &pb.RangeRequest{Key: []byte("app/x")}); err != nil || len(got.Kvs) != 1 {
		t.Fatalf("member 0's token on member 2: %v %v", got, err)
	}
	if _, err := kv2.Put(tctx, &pb.PutRequest{Key: []byte("app/x"), Value: []byte("5")}); !errors.Is(rpctypes.Error(err), rpctypes.ErrPermissionDenied) {
		t.Fatalf("member 0's token writing on member 2: %v", err)
	}
	badctx := metadata.AppendToOutgoingContext(ctx, rpctypes.TokenFieldNameGRPC, "nosuchtoken.1")
	if _, err := kv2.Range(badctx, &pb.RangeRequest{Key: []byte("app/x")}); !errors.Is(rpctypes.Error(err), rpctypes.ErrInvalidAuthToken) {
		t.Fatalf("bogus token: %v", err)
	}
	if _, err := ac.Authenticate(ctx, &pb.AuthenticateRequest{Name: "alice", Password: "wrong"}); !errors.Is(rpctypes.Error(err), rpctypes.ErrAuthFailed) {
		t.Fatalf("wrong password: %v", err)
	}

	// A watch outside alice's permissions is refused at creation.
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	wr := <-alice.Watch(wctx, "other")
	if !wr.Canceled || wr.Err() == nil || !strings.Contains(wr.Err().Error(), rpctypes.ErrPermissionDenied.Error()) {
		t.Fatalf("alice watching outside app/: canceled %v err %v", wr.Canceled, wr.Err())
	}

	// Granting write makes her put succeed everywhere at once.
	if _, err := root.RoleGrantPermission(ctx, "ro", "app/", clientv3.GetPrefixRangeEnd("app/"), clientv3.PermissionType(clientv3.PermReadWrite)); err != nil {
		t.Fatal(err)
	}
	// Her client re-authenticates by itself if the auth revision moved.
	if _, err := alice.Put(ctx, "app/x", "6"); err != nil {
		t.Fatalf("alice writes after the grant: %v", err)
	}

	// The leader still revokes expired leases (as root) with auth on.
	l, err := root.Grant(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := root.Put(ctx, "app/leased", "x", clientv3.WithLease(l.ID)); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		got, err := root.Get(ctx, "app/leased")
		if err != nil {
			t.Fatal(err)
		}
		if got.Count == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a key of an expired lease is still there with auth enabled")
		}
	}

	if _, err := alice.AuthDisable(ctx); !errors.Is(err, rpctypes.ErrPermissionDenied) {
		t.Fatalf("alice disables auth: %v", err)
	}
	if _, err := root.AuthDisable(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := anon.Put(ctx, "app/x", "7"); err != nil {
		t.Fatalf("anonymous put with auth disabled: %v", err)
	}
	st, err := anon.AuthStatus(ctx)
	if err != nil || st.Enabled {
		t.Fatalf("auth status: %v %v", st, err)
	}
	c.waitConverged(ctx, 10*time.Second)
}

// TestAuthSurvivesRestartAndSnapshot: the auth state is in each member's
// database: a restarted member enforces it, and so does a member that
// caught up through a raft snapshot taken after auth was set up.
func TestAuthSurvivesRestartAndSnapshot(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *Config) {
		cfg.BcryptCost = 4
		cfg.SnapshotCount = 20
	})
	lead := c.leader()
	lagger := (lead + 1) % 3
	ctx := ctxFor(t)
	var lagLog syncBuffer
	c.cfgs[lagger].Logger = slog.New(slog.NewTextHandler(&lagLog, nil))
	c.stop(lagger)
	setUpAuth(ctx, t, c.client(lead))
	root := c.userClient(lead, "root", "rootpw")
	for i := range 60 {
		if _, err := root.Put(ctx, "app/fill", strings.Repeat("x", i)); err != nil {
			t.Fatal(err)
		}
	}
	c.start(lagger)
	c.leader()
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(lagLog.String(), "installed snapshot") {
		if time.Now().After(deadline) {
			t.Fatalf("the stopped member did not catch up through a snapshot:\n%s", lagLog.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	check := func(i int) {
		t.Helper()
		alice := c.userClient(i, "alice", "alicepw")
		if _, err := alice.Get(ctx, "app/x", clientv3.WithSerializable()); err != nil {
			t.Fatalf("member %d: alice reads: %v", i, err)
		}
		if _, err := alice.Get(ctx, "other", clientv3.WithSerializable()); !errors.Is(err, rpctypes.ErrPermissionDenied) {
			t.Fatalf("member %d: alice reads outside app/: %v", i, err)
		}
		if _, err := c.client(i).Get(ctx, "app/x", clientv3.WithSerializable()); !errors.Is(err, rpctypes.ErrUserEmpty) {
			t.Fatalf("member %d: anonymous read: %v", i, err)
		}
		if _, err := alice.Put(ctx, "app/x", "2"); !errors.Is(err, rpctypes.ErrPermissionDenied) {
			t.Fatalf("member %d: alice writes: %v", i, err)
		}
	}
	check(lagger)
	c.stop(lead)
	c.start(lead)
	c.leader()
	check(lead)
}
