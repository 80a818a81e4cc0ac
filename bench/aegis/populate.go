package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	aegisv1 "github.com/photoncloud/photoncloud/api/aegis/v1"
)

// Principals the benchmark adds next to the world.
const (
	// pdpAccount is the platform service that asks Aegis for decisions
	// about its callers: a service account holding aegis.authzChecker on
	// system, as every PhotonCloud service does.
	pdpAccount = "orgs/system/serviceAccounts/bench-pdp"
	// tokenAccounts get keys for the client-credentials rows, one per
	// client up to this many, as several services would.
	tokenAccounts = 8
	// loginUsers have passwords, for the password-grant rows.
	loginUsers = 8
	// subjectAccounts of org-0 get keys, and so access tokens, for the
	// Authorize row whose subject is an access token.
	subjectAccounts = sasPerOrg
)

// clientKey is a service-account key: an OAuth2 client id and secret.
type clientKey struct {
	account, id, secret string
}

// fixture is what populate created that the measurements use.
type fixture struct {
	callerToken string      // pdpAccount's access token
	tokenKeys   []clientKey // tokenAccounts' keys
	subjectKeys []clientKey // org-0 service accounts sa0.. keys
	logins      []string    // "login<i>@org-0"
	loginPass   string
	writes      int
	took        time.Duration
}

// tokenResponse is the part of an OAuth2 token response the benchmark
// reads.
type tokenResponse struct {
	AccessToken string `json:"access_token"`
}

// postToken runs one grant against /oauth2/token.
func postToken(ctx context.Context, hc *http.Client, base string, form url.Values) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/oauth2/token", strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("token %s: %s: %s", form.Get("grant_type"), resp.Status, strings.TrimSpace(string(b)))
	}
	var tr tokenResponse
	if err := json.Unmarshal(b, &tr); err != nil || tr.AccessToken == "" {
		return "", fmt.Errorf("token %s: no access_token in %q", form.Get("grant_type"), b)
	}
	return tr.AccessToken, nil
}

func clientCredentials(k clientKey) url.Values {
	return url.Values{"grant_type": {"client_credentials"}, "client_id": {k.id}, "client_secret": {k.secret}}
}

// dialAegis opens one gRPC connection (HTTP/2, plaintext on loopback).
func dialAegis(addr string) (*grpc.ClientConn, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("dial aegis %s: %w", addr, err)
	}
	return conn, nil
}

// populate loads w into the running Aegis through its admin API, as an
// administrator would, then creates the benchmark's own principals. Each
// phase's creates run concurrently; a phase starts when the records it
// refers to exist.
func populate(ctx context.Context, lg *slog.Logger, s *stack, w *world) (*fixture, error) {
	start := time.Now()
	base := "http://" + s.httpAddr
	hc := &http.Client{Timeout: 30 * time.Second}
	admin, err := postToken(ctx, hc, base, url.Values{"grant_type": {"password"}, "client_id": {"photon-cli"},
		"username": {"admin"}, "password": {s.adminPassword}})
	if err != nil {
		return nil, fmt.Errorf("admin login: %w", err)
	}
	const nconns = 4
	var conns []*grpc.ClientConn
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	for range nconns {
		c, err := dialAegis(s.grpcAddr)
		if err != nil {
			return nil, err
		}
		conns = append(conns, c)
	}
	actx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+admin)
	var writes atomic.Int64
	// run executes the calls of one phase with 32 workers over the
	// connections and stops at the first error.
	run := func(phase string, calls []func(context.Context, *grpc.ClientConn) error) error {
		t0 := time.Now()
		var next atomic.Int64
		var firstErr error
		var once sync.Once
		var wg sync.WaitGroup
		for k := range 32 {
			conn := conns[k%nconns]
			wg.Go(func() {
				for {
					i := int(next.Add(1)) - 1
					if i >= len(calls) || ctx.Err() != nil {
						return
					}
					cctx, cancel := context.WithTimeout(actx, 30*time.Second)
					err := calls[i](cctx, conn)
					cancel()
					if err != nil {
						once.Do(func() { firstErr = err })
						next.Store(int64(len(calls)))
						return
					}
					writes.Add(1)
				}
			})
		}
		wg.Wait()
		if firstErr != nil {
			return fmt.Errorf("%s: %w", phase, firstErr)
		}
		lg.Info("populated", "phase", phase, "writes", len(calls), "took", time.Since(t0).Round(time.Millisecond))
		return nil
	}
	type call = func(context.Context, *grpc.ClientConn) error
	orgsC := func(c *grpc.ClientConn) aegisv1.OrgServiceClient { return aegisv1.NewOrgServiceClient(c) }
	ids := func(c *grpc.ClientConn) aegisv1.IdentityServiceClient { return aegisv1.NewIdentityServiceClient(c) }
	pol := func(c *grpc.ClientConn) aegisv1.PolicyServiceClient { return aegisv1.NewPolicyServiceClient(c) }

	fx := &fixture{loginPass: "bench login password, not secret"}
	// Phase 1: orgs, and the benchmark's own service accounts in the
	// system org.
	var calls []call
	for o := range w.orgs {
		calls = append(calls, func(ctx context.Context, c *grpc.ClientConn) error {
			_, err := orgsC(c).CreateOrg(ctx, &aegisv1.CreateOrgRequest{OrgId: fmt.Sprintf("org-%d", o), Org: &aegisv1.Org{}})
			return err
		})
	}
	sysAccounts := []string{"bench-pdp"}
	for i := range tokenAccounts {
		sysAccounts = append(sysAccounts, fmt.Sprintf("bench-svc-%d", i))
	}
	for _, id := range sysAccounts {
		calls = append(calls, func(ctx context.Context, c *grpc.ClientConn) error {
			_, err := ids(c).CreateServiceAccount(ctx, &aegisv1.CreateServiceAccountRequest{Parent: "orgs/system", ServiceAccountId: id,
				ServiceAccount: &aegisv1.ServiceAccount{}})
			return err
		})
	}
	if err := run("orgs", calls); err != nil {
		return nil, err
	}

	// Phase 2: projects, groups and users (the login users with a
	// password, which Aegis hashes with argon2id).
	calls = calls[:0]
	for o := range w.orgs {
		for p := range projectsPerOrg {
			calls = append(calls, func(ctx context.Context, c *grpc.ClientConn) error {
				_, err := orgsC(c).CreateProject(ctx, &aegisv1.CreateProjectRequest{Parent: apiOrg(o), ProjectId: fmt.Sprintf("p%d", p),
					Project: &aegisv1.Project{}})
				return err
			})
		}
		for g := range groupsPerOrg {
			calls = append(calls, func(ctx context.Context, c *grpc.ClientConn) error {
				_, err := ids(c).CreateGroup(ctx, &aegisv1.CreateGroupRequest{Parent: apiOrg(o), GroupId: fmt.Sprintf("g%d", g),
					Group: &aegisv1.Group{}})
				return err
			})
		}
		for u := range usersPerOrg {
			calls = append(calls, func(ctx context.Context, c *grpc.ClientConn) error {
				_, err := ids(c).CreateUser(ctx, &aegisv1.CreateUserRequest{Parent: apiOrg(o), UserId: fmt.Sprintf("u%d", u),
					User: &aegisv1.User{Labels: map[string]string{"team": fmt.Sprint(u % 7)}}})
				return err
			})
		}
	}
	for i := range loginUsers {
		fx.logins = append(fx.logins, fmt.Sprintf("login%d@org-0", i))
		calls = append(calls, func(ctx context.Context, c *grpc.ClientConn) error {
			_, err := ids(c).CreateUser(ctx, &aegisv1.CreateUserRequest{Parent: apiOrg(0), UserId: fmt.Sprintf("login%d", i),
				User: &aegisv1.User{}, Password: fx.loginPass})
			return err
		})
	}
	if err := run("projects, groups, users", calls); err != nil {
		return nil, err
	}

	// Phase 3: service accounts (in their projects) and memberships.
	calls = calls[:0]
	for o := range w.orgs {
		for sa := range sasPerOrg {
			calls = append(calls, func(ctx context.Context, c *grpc.ClientConn) error {
				_, err := ids(c).CreateServiceAccount(ctx, &aegisv1.CreateServiceAccountRequest{Parent: apiProject(o, saProject(sa)),
					ServiceAccountId: fmt.Sprintf("sa%d", sa), ServiceAccount: &aegisv1.ServiceAccount{}})
				return err
			})
		}
		for u := range usersPerOrg {
			for _, g := range memberships(u) {
				calls = append(calls, func(ctx context.Context, c *grpc.ClientConn) error {
					_, err := ids(c).AddGroupMember(ctx, &aegisv1.AddGroupMemberRequest{Group: apiGroup(o, g), Member: apiUser(o, u)})
					return err
				})
			}
		}
	}
	if err := run("service accounts, memberships", calls); err != nil {
		return nil, err
	}

	// Phase 4: the bindings, and the platform service's right to ask.
	calls = calls[:0]
	for i := range w.bindings {
		b := &w.bindings[i]
		ab := &aegisv1.Binding{Member: apiSubject(b.org, b.subj, b.idx), Role: "roles/" + b.role, Scope: apiScope(b)}
		if b.deny {
			ab.Effect = aegisv1.Binding_EFFECT_DENY
		}
		if b.cond >= 0 {
			ab.Condition = &aegisv1.Condition{Expression: conditions[b.cond]}
		}
		req := &aegisv1.CreateBindingRequest{Parent: apiContainer(b), BindingId: fmt.Sprintf("b%d", b.id), Binding: ab}
		calls = append(calls, func(ctx context.Context, c *grpc.ClientConn) error {
			_, err := pol(c).CreateBinding(ctx, req)
			return err
		})
	}
	calls = append(calls, func(ctx context.Context, c *grpc.ClientConn) error {
		_, err := pol(c).CreateBinding(ctx, &aegisv1.CreateBindingRequest{Parent: "system", BindingId: "bench-pdp-checker",
			Binding: &aegisv1.Binding{Member: pdpAccount, Role: "roles/aegis.authzChecker"}})
		return err
	})
	if err := run("bindings", calls); err != nil {
		return nil, err
	}

	// Phase 5: keys. Their secrets are returned once, here.
	var mu sync.Mutex
	keyCall := func(account string, dst *[]clientKey) call {
		return func(ctx context.Context, c *grpc.ClientConn) error {
			k, err := ids(c).CreateServiceAccountKey(ctx, &aegisv1.CreateServiceAccountKeyRequest{Parent: account, Key: &aegisv1.ServiceAccountKey{}})
			if err != nil {
				return err
			}
			mu.Lock()
			*dst = append(*dst, clientKey{account: account, id: k.GetClientId(), secret: k.GetClientSecret()})
			mu.Unlock()
			return nil
		}
	}
	var pdpKeys []clientKey
	calls = append(calls[:0], keyCall(pdpAccount, &pdpKeys))
	for _, id := range sysAccounts[1:] {
		calls = append(calls, keyCall("orgs/system/serviceAccounts/"+id, &fx.tokenKeys))
	}
	for sa := range subjectAccounts {
		calls = append(calls, keyCall(apiSA(0, sa), &fx.subjectKeys))
	}
	if err := run("keys", calls); err != nil {
		return nil, err
	}
	fx.callerToken, err = postToken(ctx, hc, base, clientCredentials(pdpKeys[0]))
	if err != nil {
		return nil, fmt.Errorf("caller token: %w", err)
	}
	fx.writes = int(writes.Load())
	fx.took = time.Since(start)
	return fx, nil
}
