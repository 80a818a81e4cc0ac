package server

import (
	"context"

	"google.golang.org/protobuf/proto"

	aegisv1 "github.com/photoncloud/photoncloud/api/aegis/v1"
	"github.com/photoncloud/photoncloud/internal/aegis/store"
	"github.com/photoncloud/photoncloud/internal/platform/pagetoken"
)

// The store revokes nothing by itself: where the API says a principal's
// tokens stop working (delete, disable, password change), the handler
// records a principal revocation, which every replica's verifier enforces.
// Without it, a token of a deleted user would work again for a new user
// created under the same name.

// revoke revokes every token of principal issued until now. A failure is
// logged, not returned: the change it follows is already committed, and
// this replica rejects the principal's tokens anyway while the principal
// is missing or disabled.
func (s *Server) revoke(ctx context.Context, principal string) {
	if _, err := s.st.RevokePrincipal(context.WithoutCancel(ctx), principal, s.now()); err != nil {
		s.lg.Error("revoking the tokens of a principal failed", "principal", principal, "err", err)
	}
}

func (s *Server) revokeAll(ctx context.Context, principals []string) {
	for _, p := range principals {
		s.revoke(ctx, p)
	}
}

// listAll pages through a store list.
func listAll[T proto.Message](list func(opts store.ListOptions[T]) ([]T, string, error)) []T {
	var out []T
	tok := ""
	for {
		page, next, err := list(store.ListOptions[T]{PageSize: pagetoken.MaxPageSize, PageToken: tok})
		if err != nil {
			return out
		}
		out = append(out, page...)
		if next == "" {
			return out
		}
		tok = next
	}
}

// serviceAccountsIn lists the names of the service accounts directly in an
// org or project.
func (s *Server) serviceAccountsIn(parent string) []string {
	var out []string
	for _, sa := range listAll(func(o store.ListOptions[*aegisv1.ServiceAccount]) ([]*aegisv1.ServiceAccount, string, error) {
		return s.st.ListServiceAccounts(parent, o)
	}) {
		out = append(out, sa.GetName())
	}
	return out
}

// principalsIn lists the users and service accounts of an org, including
// its projects' service accounts.
func (s *Server) principalsIn(org string) []string {
	var out []string
	for _, u := range listAll(func(o store.ListOptions[*aegisv1.User]) ([]*aegisv1.User, string, error) {
		return s.st.ListUsers(org, o)
	}) {
		out = append(out, u.GetName())
	}
	out = append(out, s.serviceAccountsIn(org)...)
	for _, p := range listAll(func(o store.ListOptions[*aegisv1.Project]) ([]*aegisv1.Project, string, error) {
		return s.st.ListProjects(org, o)
	}) {
		out = append(out, s.serviceAccountsIn(p.GetName())...)
	}
	return out
}
