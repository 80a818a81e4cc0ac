package server

import (
	"context"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/photoncloud/photoncloud/internal/aegis/policy"
)

// Name shapes of the API (common.proto). A shape is a slash-separated
// pattern in which "*" is one non-empty segment. Handlers check the shape
// before anything else, so a malformed name is INVALID_ARGUMENT and never
// reaches the evaluator or the store; the store still validates ids.
const (
	shapeOrg        = "orgs/*"
	shapeProject    = "orgs/*/projects/*"
	shapeUser       = "orgs/*/users/*"
	shapeGroup      = "orgs/*/groups/*"
	shapeOrgSA      = "orgs/*/serviceAccounts/*"
	shapeProjectSA  = "orgs/*/projects/*/serviceAccounts/*"
	shapeOrgKey     = "orgs/*/serviceAccounts/*/keys/*"
	shapeProjectKey = "orgs/*/projects/*/serviceAccounts/*/keys/*"
	shapeCustomRole = "orgs/*/roles/*"
	shapeBuiltinRol = "roles/*"
	shapeSysBinding = "system/bindings/*"
	shapeOrgBinding = "orgs/*/bindings/*"
	shapePrjBinding = "orgs/*/projects/*/bindings/*"
	shapeSystem     = "system"
)

var (
	containerShapes = []string{shapeSystem, shapeOrg, shapeProject}
	saParentShapes  = []string{shapeOrg, shapeProject}
	saShapes        = []string{shapeOrgSA, shapeProjectSA}
	keyShapes       = []string{shapeOrgKey, shapeProjectKey}
	bindingShapes   = []string{shapeSysBinding, shapeOrgBinding, shapePrjBinding}
	principalShapes = []string{shapeUser, shapeOrgSA, shapeProjectSA}
	memberShapes    = []string{shapeUser, shapeOrgSA, shapeProjectSA, shapeGroup}
)

// maxNameLen bounds any name the API accepts.
const maxNameLen = 1024

func matchShape(name, shape string) bool {
	ns, ss := strings.Split(name, "/"), strings.Split(shape, "/")
	if len(ns) != len(ss) {
		return false
	}
	for i := range ss {
		if ns[i] == "" || (ss[i] != "*" && ss[i] != ns[i]) {
			return false
		}
	}
	return true
}

// getNamed is the whole of a plain Get method: the name checked against
// shapes, the caller allowed perm on it, the stored resource read.
func getNamed[T any](ctx context.Context, s *Server, name, perm string, get func(string) (T, error), shapes ...string) (T, error) {
	var zero T
	if err := checkName("name", name, shapes...); err != nil {
		return zero, err
	}
	if _, err := s.authorize(ctx, perm, name); err != nil {
		return zero, err
	}
	v, err := get(name)
	return v, s.apiErr(err)
}

// checkName returns INVALID_ARGUMENT unless name has one of the shapes.
// field names the request field for the message.
func checkName(field, name string, shapes ...string) error {
	if name == "" {
		return status.Errorf(codes.InvalidArgument, "%s is required", field)
	}
	if len(name) > maxNameLen {
		return status.Errorf(codes.InvalidArgument, "%s is longer than %d bytes", field, maxNameLen)
	}
	for _, sh := range shapes {
		if matchShape(name, sh) {
			// Every Aegis name below system is also a policy resource;
			// parsing it here rejects what the evaluator would.
			if strings.HasPrefix(name, "orgs/") {
				if _, err := policy.ParseResource(name); err != nil {
					return status.Errorf(codes.InvalidArgument, "%s %q: %v", field, clip(name), err)
				}
			}
			return nil
		}
	}
	want := make([]string, len(shapes))
	for i, sh := range shapes {
		want[i] = strings.ReplaceAll(sh, "*", "{id}")
	}
	return status.Errorf(codes.InvalidArgument, "%s %q is not %s", field, clip(name), strings.Join(want, " or "))
}

// checkID returns INVALID_ARGUMENT for an empty id; the store checks the
// syntax.
func checkID(field, id string) error {
	if id == "" {
		return status.Errorf(codes.InvalidArgument, "%s is required", field)
	}
	if strings.Contains(id, "/") {
		return status.Errorf(codes.InvalidArgument, "%s %q must not contain '/'", field, clip(id))
	}
	return nil
}

// authzResource is the policy resource a permission on an API name is
// checked on. Names below "system" (system bindings) are not policy
// resources: the policy grammar has nothing under system but orgs, so they
// are checked on system itself.
func authzResource(name string) string {
	if strings.HasPrefix(name, "system/") {
		return policy.SystemScope
	}
	return name
}

// within reports whether name is scope or below it, segment by segment
// (orgs/acme2 is not within orgs/acme).
func within(name, scope string) bool {
	return scope == policy.SystemScope || name == scope || strings.HasPrefix(name, scope+"/")
}

// clip shortens untrusted input for messages.
func clip(s string) string {
	if len(s) > 96 {
		return s[:96] + "…"
	}
	return s
}
