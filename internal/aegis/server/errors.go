package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/photoncloud/photoncloud/internal/aegis/password"
	"github.com/photoncloud/photoncloud/internal/aegis/store"
)

func methodOf(ctx context.Context) (string, bool) { return grpc.Method(ctx) }

// toStatus maps an error of a handler to the status the client gets.
// Statuses made by this package pass unchanged; store errors map through
// store.GRPCCode with their (short, clipped) message; everything else is
// INTERNAL, with the details only in the log, never UNKNOWN.
func toStatus(lg *slog.Logger, err error) *status.Status {
	if err == nil {
		return status.New(codes.OK, "")
	}
	// Only a status returned as is: a store error that wraps a Chainfire
	// status must go through GRPCCode, which hides most of them.
	if se, ok := err.(interface{ GRPCStatus() *status.Status }); ok {
		return se.GRPCStatus()
	}
	switch code := store.GRPCCode(err); code {
	case codes.Internal:
		lg.Error("internal error", "err", err)
		return status.New(codes.Internal, "internal error")
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted:
		lg.Warn("store unavailable", "err", err)
		return status.New(code, "the store is unavailable; retry")
	case codes.Canceled:
		return status.New(code, "request cancelled")
	default:
		return status.New(code, err.Error())
	}
}

// apiErr is toStatus as an error.
func (s *Server) apiErr(err error) error {
	if err == nil {
		return nil
	}
	return toStatus(s.lg, err).Err()
}

// invalidArg returns an error the store's error mapping (and toStatus)
// reports as INVALID_ARGUMENT; used inside update callbacks, whose errors
// the store returns to us.
func invalidArg(format string, args ...any) error {
	return fmt.Errorf("%w: %s", store.ErrInvalidArgument, fmt.Sprintf(format, args...))
}

// passwordErr maps a password hashing failure: bad input is
// INVALID_ARGUMENT, anything else internal.
func (s *Server) passwordErr(err error) error {
	switch {
	case errors.Is(err, password.ErrEmptyPassword), errors.Is(err, password.ErrPasswordTooLong):
		return status.Errorf(codes.InvalidArgument, "password: %v", err)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.FromContextError(err).Err()
	}
	s.lg.Error("password hashing failed", "err", err)
	return status.Error(codes.Internal, "internal error")
}
