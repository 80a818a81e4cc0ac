package policy

import "errors"

// Sentinel errors. Every validation error wraps exactly one of them so the
// server can map it to a gRPC code with errors.Is (all of them are
// InvalidArgument except ErrBuiltinRole, which is FailedPrecondition, and
// ErrTxDone, which is a programming error).
var (
	// ErrInvalidName is wrapped by errors about malformed resource, scope,
	// principal, group, role or binding names.
	ErrInvalidName = errors.New("invalid name")
	// ErrInvalidPermission is wrapped by errors about malformed permissions
	// and permission patterns.
	ErrInvalidPermission = errors.New("invalid permission")
	// ErrInvalidCondition is wrapped by errors about CEL conditions that do
	// not parse, do not type-check, are not boolean or are too long.
	ErrInvalidCondition = errors.New("invalid condition")
	// ErrInvalidBinding is wrapped by errors about bindings that are
	// structurally wrong (bad effect, role not bindable at the scope, ...).
	ErrInvalidBinding = errors.New("invalid binding")
	// ErrInvalidRole is wrapped by errors about malformed custom roles.
	ErrInvalidRole = errors.New("invalid role")
	// ErrInvalidPrincipal is wrapped by errors about malformed principals,
	// groups and memberships.
	ErrInvalidPrincipal = errors.New("invalid principal")
	// ErrInvalidRequest is wrapped by errors about malformed authorization
	// requests (labels, source address, ...); name and permission problems
	// in a request wrap ErrInvalidName or ErrInvalidPermission as well.
	ErrInvalidRequest = errors.New("invalid request")
	// ErrBuiltinRole is returned when a transaction tries to write or delete
	// a built-in role.
	ErrBuiltinRole = errors.New("built-in role is read-only")
	// ErrTxDone is returned by Tx methods called after Update returned.
	ErrTxDone = errors.New("transaction already finished")
)
