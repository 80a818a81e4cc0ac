package server

import (
	"context"

	"google.golang.org/protobuf/proto"

	"github.com/photoncloud/photoncloud/internal/aegis/store"
)

// listRequest is what every List request carries besides its parent.
type listRequest interface {
	GetPageSize() int32
	GetPageToken() string
	GetFilter() string
}

// listUnder is the whole of a plain List method but for the response
// message: the parent (request field field) checked against shapes, the
// caller allowed perm on it, the filter compiled against spec, one page of
// the store's index under the parent read through list.
//
// The order of the steps is the API's: a malformed parent is
// INVALID_ARGUMENT before any check, and the authorization (NOT_FOUND
// outside the caller's tenant, PERMISSION_DENIED inside it) comes before
// the filter is looked at, so that a bad filter on a parent the caller may
// not see reveals nothing either.
func listUnder[T proto.Message](ctx context.Context, s *Server, field, parent, perm string, req listRequest, spec filterSpec,
	list func(string, store.ListOptions[T]) ([]T, string, error), shapes ...string) ([]T, string, error) {
	if err := checkName(field, parent, shapes...); err != nil {
		return nil, "", err
	}
	if _, err := s.authorize(ctx, perm, parent); err != nil {
		return nil, "", err
	}
	return listPage(s, parent, req, spec, list)
}

// listPage is the rest of listUnder once the caller may list under parent
// (ListRoles, whose empty parent needs no permission, starts here): the
// filter compiled, one page read.
func listPage[T proto.Message](s *Server, parent string, req listRequest, spec filterSpec,
	list func(string, store.ListOptions[T]) ([]T, string, error)) ([]T, string, error) {
	match, err := compileFilter[T](req.GetFilter(), spec)
	if err != nil {
		return nil, "", err
	}
	items, next, err := list(parent, store.ListOptions[T]{
		PageSize: req.GetPageSize(), PageToken: req.GetPageToken(), Filter: req.GetFilter(), Match: match})
	if err != nil {
		return nil, "", s.apiErr(err)
	}
	return items, next, nil
}
