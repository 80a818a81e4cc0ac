package store

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/photoncloud/photoncloud/internal/aegis/policy"
)

// Sentinel errors. Every error the Store returns for a request-level
// problem wraps exactly one of them (test with errors.Is); GRPCCode maps
// them to the status codes of the aegis.v1 API. Anything else is a
// Chainfire or internal failure.
var (
	// ErrNotFound: the named resource does not exist. NOT_FOUND.
	ErrNotFound = errors.New("not found")
	// ErrParentNotFound: the parent of a new resource, or a resource it
	// refers to (a binding's member or custom role, a group member), does
	// not exist. NOT_FOUND.
	ErrParentNotFound = errors.New("parent not found")
	// ErrAlreadyExists: a resource with that name exists, or a unique
	// attribute (federated identity, certificate identity, group
	// membership) is taken. ALREADY_EXISTS.
	ErrAlreadyExists = errors.New("already exists")
	// ErrEtagMismatch: the etag given with an update or delete is not the
	// resource's current one; nothing changed. ABORTED.
	ErrEtagMismatch = errors.New("etag mismatch")
	// ErrConflict: the write kept racing with concurrent writes and gave
	// up; nothing (or, for a forced cascading delete, only some of the
	// dependents) changed. Retrying is safe. ABORTED.
	ErrConflict = errors.New("too much write contention")
	// ErrFailedPrecondition: the current state forbids the operation
	// (deleting a non-empty org or project without force, a role still
	// in use, changing a built-in role, an 11th service-account key,
	// deleting orgs/system). FAILED_PRECONDITION.
	ErrFailedPrecondition = errors.New("failed precondition")
	// ErrInvalidArgument: malformed input: a bad name or id, a value over
	// a limit, a condition that does not compile, a bad page token.
	// Nothing changed. INVALID_ARGUMENT.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrClosed: the Store was closed. UNAVAILABLE.
	ErrClosed = errors.New("store closed")
)

// GRPCCode maps an error returned by the Store to the gRPC code the
// aegis.v1 API answers with (never codes.Unknown). nil is codes.OK.
func GRPCCode(err error) codes.Code {
	switch {
	case err == nil:
		return codes.OK
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrParentNotFound):
		return codes.NotFound
	case errors.Is(err, ErrAlreadyExists):
		return codes.AlreadyExists
	case errors.Is(err, ErrEtagMismatch), errors.Is(err, ErrConflict):
		return codes.Aborted
	case errors.Is(err, ErrFailedPrecondition), errors.Is(err, policy.ErrBuiltinRole):
		return codes.FailedPrecondition
	case errors.Is(err, ErrInvalidArgument):
		return codes.InvalidArgument
	case errors.Is(err, ErrClosed):
		return codes.Unavailable
	case errors.Is(err, context.Canceled):
		return codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		return codes.DeadlineExceeded
	}
	// Chainfire's own errors arrive as gRPC statuses; pass through the
	// ones that tell the caller to retry, hide the rest.
	var se interface{ GRPCStatus() *status.Status }
	if errors.As(err, &se) {
		switch c := se.GRPCStatus().Code(); c {
		case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted, codes.Canceled:
			return c
		}
	}
	return codes.Internal
}

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidArgument, fmt.Sprintf(format, args...))
}

func notFoundf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrNotFound, fmt.Sprintf(format, args...))
}

func preconditionf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrFailedPrecondition, fmt.Sprintf(format, args...))
}
