package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	aegisv1 "github.com/photoncloud/photoncloud/api/aegis/v1"
	"github.com/photoncloud/photoncloud/internal/chainfire/chainfiretest"
)

func TestOrgProjectCRUD(t *testing.T) {
	addr := startChainfire(t)
	s := openStore(t, addr, nil)
	ctx := ctxT(t)

	in := &aegisv1.Org{Name: "ignored", Uid: "ignored", DisplayName: "Acme", Labels: map[string]string{"env": "prod"}}
	org, err := s.CreateOrg(ctx, "acme", in)
	if err != nil {
		t.Fatal(err)
	}
	if org.Name != "orgs/acme" || org.Uid == "" || org.Uid == "ignored" || org.Etag == "" ||
		org.State != aegisv1.Org_STATE_ACTIVE || org.CreateTime == nil {
		t.Fatalf("created org %v", org)
	}
	if in.Name != "ignored" {
		t.Fatal("CreateOrg modified its argument")
	}
	got, err := s.GetOrg("orgs/acme")
	if err != nil || !proto.Equal(got, org) {
		t.Fatalf("GetOrg = %v, %v; want %v", got, err, org)
	}
	_, err = s.CreateOrg(ctx, "acme", nil)
	wantErr(t, err, ErrAlreadyExists)
	_, err = s.CreateOrg(ctx, "Bad_ID", nil)
	wantErr(t, err, ErrInvalidArgument)
	_, err = s.CreateOrg(ctx, "x", &aegisv1.Org{Labels: map[string]string{"Bad": "v"}})
	wantErr(t, err, ErrInvalidArgument)
	_, err = s.GetOrg("orgs/nope")
	wantErr(t, err, ErrNotFound)

	// Update with the right etag, then with the stale one.
	up, err := s.UpdateOrg(ctx, "orgs/acme", org.Etag, func(o *aegisv1.Org) error {
		o.DisplayName = "Acme Inc"
		o.Uid = "hijack" // output only: ignored
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if up.DisplayName != "Acme Inc" || up.Uid != org.Uid || up.Etag == org.Etag {
		t.Fatalf("updated org %v", up)
	}
	_, err = s.UpdateOrg(ctx, "orgs/acme", org.Etag, func(o *aegisv1.Org) error { return nil })
	wantErr(t, err, ErrEtagMismatch)
	_, err = s.UpdateOrg(ctx, "orgs/acme", "garbage", func(o *aegisv1.Org) error { return nil })
	wantErr(t, err, ErrEtagMismatch)
	_, err = s.UpdateOrg(ctx, "orgs/nope", "", func(o *aegisv1.Org) error { return nil })
	wantErr(t, err, ErrNotFound)
	if g, _ := s.GetOrg("orgs/acme"); g.Etag != up.Etag || g.DisplayName != "Acme Inc" {
		t.Fatalf("read after update: %v", g)
	}

	// Projects: parent checks.
	_, err = s.CreateProject(ctx, "orgs/nope", "web", nil)
	wantErr(t, err, ErrParentNotFound)
	p := must[*aegisv1.Project](t)(s.CreateProject(ctx, "orgs/acme", "web", &aegisv1.Project{DisplayName: "Web"}))
	if p.Name != "orgs/acme/projects/web" {
		t.Fatalf("project %v", p)
	}
	_, err = s.CreateProject(ctx, "orgs/acme", "web", nil)
	wantErr(t, err, ErrAlreadyExists)

	// A non-empty org is not deleted without force.
	wantErr(t, s.DeleteOrg(ctx, "orgs/acme", "", false), ErrFailedPrecondition)
	wantErr(t, s.DeleteProject(ctx, p.Name, up.Etag, false), ErrEtagMismatch)
	if err := s.DeleteProject(ctx, p.Name, p.Etag, false); err != nil {
		t.Fatal(err)
	}
	_, err = s.GetProject(p.Name)
	wantErr(t, err, ErrNotFound)
	wantErr(t, s.DeleteOrg(ctx, "orgs/acme", org.Etag, false), ErrEtagMismatch)
	if err := s.DeleteOrg(ctx, "orgs/acme", up.Etag, false); err != nil {
		t.Fatal(err)
	}
	wantErr(t, s.DeleteOrg(ctx, "orgs/acme", "", false), ErrNotFound)

	// Re-created under the same name: a new uid.
	again := must[*aegisv1.Org](t)(s.CreateOrg(ctx, "acme", nil))
	if again.Uid == org.Uid {
		t.Fatal("uid reused")
	}
	must[*aegisv1.Org](t)(s.CreateOrg(ctx, "system", nil))
	wantErr(t, s.DeleteOrg(ctx, SystemOrg, "", true), ErrFailedPrecondition)
}

func TestConcurrentCreatesOneWins(t *testing.T) {
	addr := startChainfire(t)
	a := openStore(t, addr, nil)
	b := openStore(t, addr, nil)
	ctx := ctxT(t)
	must[*aegisv1.Org](t)(a.CreateOrg(ctx, "acme", nil))

	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := a
			if i%2 == 1 {
				s = b
			}
			_, errs[i] = s.CreateProject(ctx, "orgs/acme", "web", &aegisv1.Project{DisplayName: fmt.Sprint(i)})
		}()
	}
	wg.Wait()
	wins := 0
	for _, err := range errs {
		switch {
		case err == nil:
			wins++
		default:
			wantErr(t, err, ErrAlreadyExists)
		}
	}
	if wins != 1 {
		t.Fatalf("%d creates won", wins)
	}

	// Each store reads its own index, which has to catch up with the
	// winner's write first.
	if err := a.WaitRevision(ctx, b.Revision()); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitRevision(ctx, a.Revision()); err != nil {
		t.Fatal(err)
	}

	// Concurrent unconditional updates all apply (retrying); concurrent
	// updates with the same etag: exactly one wins.
	p := must[*aegisv1.Project](t)(a.GetProject("orgs/acme/projects/web"))
	errs = make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := a
			if i%2 == 1 {
				s = b
			}
			_, errs[i] = s.UpdateProject(ctx, p.Name, p.Etag, func(p *aegisv1.Project) error {
				p.Description = fmt.Sprint(i)
				return nil
			})
		}()
	}
	wg.Wait()
	wins = 0
	for _, err := range errs {
		if err == nil {
			wins++
		} else {
			wantErr(t, err, ErrEtagMismatch)
		}
	}
	if wins != 1 {
		t.Fatalf("%d conditional updates won", wins)
	}
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := a
			if i%2 == 1 {
				s = b
			}
			_, errs[i] = s.UpdateProject(ctx, p.Name, "", func(p *aegisv1.Project) error {
				if p.Labels == nil {
					p.Labels = map[string]string{}
				}
				p.Labels[fmt.Sprintf("k%d", i)] = "v"
				return nil
			})
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := a.WaitRevision(ctx, b.Revision()); err != nil {
		t.Fatal(err)
	}
	if got := must[*aegisv1.Project](t)(a.GetProject(p.Name)); len(got.Labels) != n {
		t.Fatalf("unconditional updates lost: labels %v", got.Labels)
	}
}

func TestPagination(t *testing.T) {
	addr := startChainfire(t)
	s := openStore(t, addr, nil)
	ctx := ctxT(t)
	must[*aegisv1.Org](t)(s.CreateOrg(ctx, "acme", nil))
	must[*aegisv1.Org](t)(s.CreateOrg(ctx, "acme2", nil))
	const n = 120
	for i := range n {
		must[*aegisv1.User](t)(s.CreateUser(ctx, "orgs/acme", fmt.Sprintf("u%03d", i),
			&aegisv1.User{State: aegisv1.User_State(1 + i%2)}, ""))
	}
	must[*aegisv1.User](t)(s.CreateUser(ctx, "orgs/acme2", "other", nil, ""))
	must[*aegisv1.Group](t)(s.CreateGroup(ctx, "orgs/acme", "devs", nil))

	var names []string
	tok := ""
	pages := 0
	for {
		users, next, err := s.ListUsers("orgs/acme", ListOptions[*aegisv1.User]{PageToken: tok})
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, u := range users {
			names = append(names, u.Name)
			if u.Etag == "" {
				t.Fatal("listed user without etag")
			}
		}
		if next == "" {
			break
		}
		tok = next
	}
	if pages != 3 || len(names) != n {
		t.Fatalf("%d pages, %d users", pages, len(names))
	}
	for i, nm := range names {
		if want := fmt.Sprintf("orgs/acme/users/u%03d", i); nm != want {
			t.Fatalf("user %d is %s, want %s", i, nm, want)
		}
	}

	// Match fills pages with matching records only, and the token is
	// bound to the filter text.
	disabled := func(u *aegisv1.User) bool { return u.State == aegisv1.User_STATE_DISABLED }
	p1, next, err := s.ListUsers("orgs/acme", ListOptions[*aegisv1.User]{PageSize: 40, Filter: "state=DISABLED", Match: disabled})
	if err != nil || len(p1) != 40 || next == "" {
		t.Fatalf("filtered page 1: %d, %q, %v", len(p1), next, err)
	}
	p2, next2, err := s.ListUsers("orgs/acme", ListOptions[*aegisv1.User]{PageSize: 40, PageToken: next, Filter: "state=DISABLED", Match: disabled})
	if err != nil || len(p2) != 20 || next2 != "" {
		t.Fatalf("filtered page 2: %d, %q, %v", len(p2), next2, err)
	}
	_, _, err = s.ListUsers("orgs/acme", ListOptions[*aegisv1.User]{PageToken: next, Filter: "other"})
	wantErr(t, err, ErrInvalidArgument)
	_, _, err = s.ListUsers("orgs/acme2", ListOptions[*aegisv1.User]{PageToken: next, Filter: "state=DISABLED"})
	wantErr(t, err, ErrInvalidArgument)
	_, _, err = s.ListUsers("orgs/acme", ListOptions[*aegisv1.User]{PageToken: "!!"})
	wantErr(t, err, ErrInvalidArgument)
	_, _, err = s.ListUsers("orgs/acme", ListOptions[*aegisv1.User]{PageSize: -1})
	wantErr(t, err, ErrInvalidArgument)
	big, _, err := s.ListUsers("orgs/acme", ListOptions[*aegisv1.User]{PageSize: 5000})
	if err != nil || len(big) != n {
		t.Fatalf("page size 5000: %d, %v", len(big), err)
	}
	orgs, _, err := s.ListOrgs(ListOptions[*aegisv1.Org]{})
	if err != nil || len(orgs) != 2 {
		t.Fatalf("orgs: %d, %v", len(orgs), err)
	}
	// Built-in roles page too.
	roles, next, err := s.ListRoles("", ListOptions[*aegisv1.Role]{PageSize: 5})
	if err != nil || len(roles) != 5 || next == "" || !roles[0].BuiltIn {
		t.Fatalf("built-in roles: %d, %q, %v", len(roles), next, err)
	}
	rest, _, err := s.ListRoles("", ListOptions[*aegisv1.Role]{PageSize: 1000, PageToken: next})
	if err != nil || rest[0].Name <= roles[4].Name {
		t.Fatalf("built-in roles page 2: %v, %v", rest, err)
	}
}

func TestWaitRevisionAndClose(t *testing.T) {
	addr := startChainfire(t)
	cli := chainfiretest.Client(t, addr)
	s := openStore(t, addr, nil)
	ctx := ctxT(t)
	// A revision made outside the watched prefix produces no event; the
	// store learns about it through a progress notification.
	resp, err := cli.Put(ctx, "/elsewhere", "x")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.WaitRevision(ctx, resp.Header.Revision); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := s.WaitRevision(short, resp.Header.Revision+100); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitRevision of a future revision: %v", err)
	}

	s2 := openStore(t, addr, nil)
	must[*aegisv1.Org](t)(s2.CreateOrg(ctx, "acme", nil))
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s2.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
	_, err = s2.CreateOrg(ctx, "acme2", nil)
	wantErr(t, err, ErrClosed)
	if GRPCCode(err) != codes.Unavailable {
		t.Fatalf("GRPCCode(ErrClosed) = %v", GRPCCode(err))
	}
	if _, err := s2.GetOrg("orgs/acme"); err != nil {
		t.Fatal("reads after Close:", err)
	}
	wantErr(t, s2.WaitRevision(ctx, 1<<40), ErrClosed)
}
