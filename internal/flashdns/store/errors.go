package store

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/photoncloud/photoncloud/internal/flashdns/zone"
)

// Sentinel errors. Every error the Store returns for a request-level
// problem wraps exactly one of them (test with errors.Is); GRPCCode maps
// them to the status codes of the flashdns.v1 API. Anything else is a
// Chainfire or internal failure.
var (
	// ErrNotFound: the zone or record set does not exist (or belongs to
	// another project). NOT_FOUND.
	ErrNotFound = errors.New("not found")
	// ErrAlreadyExists: a zone of that DNS name exists in some project,
	// or a CREATE names an existing record set. ALREADY_EXISTS.
	ErrAlreadyExists = errors.New("already exists")
	// ErrEtagMismatch: the etag given is not the zone's current one;
	// nothing changed. ABORTED.
	ErrEtagMismatch = errors.New("etag mismatch")
	// ErrConflict: the write kept racing with concurrent writes of other
	// replicas and gave up; nothing changed. Retrying is safe. ABORTED.
	ErrConflict = errors.New("too much write contention")
	// ErrFailedPrecondition: the current state forbids the operation
	// (deleting a zone with records without force, a DELETE that does not
	// match the set, a zone nested in another project's).
	// FAILED_PRECONDITION.
	ErrFailedPrecondition = errors.New("failed precondition")
	// ErrInvalidArgument: malformed input, or a change whose result breaks
	// a zone rule. Nothing changed. INVALID_ARGUMENT. Validation errors of
	// package zone (zone.ErrInvalid) map to the same code.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrResourceExhausted: a quota (zones per project, record sets per
	// zone) would be exceeded. RESOURCE_EXHAUSTED.
	ErrResourceExhausted = errors.New("quota exceeded")
	// ErrClosed: the Store was closed. UNAVAILABLE.
	ErrClosed = errors.New("store closed")
	// ErrUnavailable: Chainfire did not answer within the store's request
	// timeout. Whether the write happened is unknown, as with any timed-out
	// request to etcd. UNAVAILABLE.
	ErrUnavailable = errors.New("chainfire unavailable")
)

// GRPCCode maps an error returned by the Store to the gRPC code the
// flashdns.v1 API answers with (never codes.Unknown). nil is codes.OK.
func GRPCCode(err error) codes.Code {
	switch {
	case err == nil:
		return codes.OK
	case errors.Is(err, ErrNotFound):
		return codes.NotFound
	case errors.Is(err, ErrAlreadyExists):
		return codes.AlreadyExists
	case errors.Is(err, ErrEtagMismatch), errors.Is(err, ErrConflict):
		return codes.Aborted
	case errors.Is(err, ErrFailedPrecondition):
		return codes.FailedPrecondition
	case errors.Is(err, ErrInvalidArgument), errors.Is(err, zone.ErrInvalid):
		return codes.InvalidArgument
	case errors.Is(err, ErrResourceExhausted):
		return codes.ResourceExhausted
	case errors.Is(err, ErrClosed), errors.Is(err, ErrUnavailable):
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

func existsf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrAlreadyExists, fmt.Sprintf(format, args...))
}

func preconditionf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrFailedPrecondition, fmt.Sprintf(format, args...))
}

func exhaustedf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrResourceExhausted, fmt.Sprintf(format, args...))
}

// zoneInvalid wraps a validation error of package zone so that it also
// matches ErrInvalidArgument.
func zoneInvalid(err error) error {
	if err == nil || errors.Is(err, ErrInvalidArgument) {
		return err
	}
	if errors.Is(err, zone.ErrInvalid) {
		return fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	return err
}

// clip shortens untrusted input for error messages.
func clip(s string) string {
	if len(s) > 96 {
		return s[:96] + "…"
	}
	return s
}
