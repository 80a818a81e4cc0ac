package authn

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// OAuth2 error codes (RFC 6749 section 5.2, RFC 8693 section 2.2.2).
const (
	codeInvalidRequest       = "invalid_request"
	codeInvalidClient        = "invalid_client"
	codeInvalidGrant         = "invalid_grant"
	codeUnauthorizedClient   = "unauthorized_client"
	codeUnsupportedGrantType = "unsupported_grant_type"
	codeInvalidScope         = "invalid_scope"
	codeInvalidTarget        = "invalid_target"
	codeServerError          = "server_error"
	// RFC 6749 defines no code for a rate limit at the token endpoint;
	// temporarily_unavailable (from section 4.1.2.1) with HTTP 429 and
	// Retry-After is what clients understand best.
	codeTemporarilyUnavailable = "temporarily_unavailable"
)

// grantError is a refusal, carrying how each transport renders it: the
// OAuth2 error code and HTTP status, and the gRPC status code. desc is shown
// to the client, so it never says more than the client may know (no "user
// unknown" against "wrong password"); cause is for the server log only.
type grantError struct {
	code       string
	desc       string
	httpStatus int
	grpcCode   codes.Code
	retryAfter time.Duration
	cause      error
}

func (e *grantError) Error() string {
	if e.cause != nil {
		return e.code + ": " + e.desc + ": " + e.cause.Error()
	}
	return e.code + ": " + e.desc
}

func (e *grantError) Unwrap() error { return e.cause }

func newGrantError(code string, httpStatus int, grpcCode codes.Code, format string, args ...any) *grantError {
	desc := format
	if len(args) > 0 {
		desc = fmt.Sprintf(format, args...)
	}
	return &grantError{code: code, desc: desc, httpStatus: httpStatus, grpcCode: grpcCode}
}

func errInvalidRequest(format string, args ...any) *grantError {
	return newGrantError(codeInvalidRequest, http.StatusBadRequest, codes.InvalidArgument, format, args...)
}

func errInvalidScope(format string, args ...any) *grantError {
	return newGrantError(codeInvalidScope, http.StatusBadRequest, codes.InvalidArgument, format, args...)
}

func errInvalidTarget(format string, args ...any) *grantError {
	return newGrantError(codeInvalidTarget, http.StatusBadRequest, codes.InvalidArgument, format, args...)
}

func errUnsupportedGrant(format string, args ...any) *grantError {
	return newGrantError(codeUnsupportedGrantType, http.StatusBadRequest, codes.InvalidArgument, format, args...)
}

func errUnauthorizedClient(format string, args ...any) *grantError {
	return newGrantError(codeUnauthorizedClient, http.StatusBadRequest, codes.PermissionDenied, format, args...)
}

// errInvalidClient is a failed client authentication. RFC 6749 allows 401
// always and requires it (with WWW-Authenticate) when the client used the
// Authorization header; 401 for all keeps one behaviour.
func errInvalidClient(format string, args ...any) *grantError {
	return newGrantError(codeInvalidClient, http.StatusUnauthorized, codes.Unauthenticated, format, args...)
}

func errInvalidGrant(format string, args ...any) *grantError {
	return newGrantError(codeInvalidGrant, http.StatusBadRequest, codes.Unauthenticated, format, args...)
}

// errBadSubjectToken: RFC 8693 section 2.2.2 says an invalid subject_token
// is invalid_request; over gRPC it is an authentication failure.
func errBadSubjectToken(format string, args ...any) *grantError {
	return newGrantError(codeInvalidRequest, http.StatusBadRequest, codes.Unauthenticated, format, args...)
}

// The one answer to every failed password login: unknown user, wrong
// password, no password, disabled user or org all look alike.
func errBadLogin() *grantError { return errInvalidGrant("invalid username or password") }

// errPasswordDisabled: over gRPC the method exists but the configuration
// forbids it.
func errPasswordDisabled() *grantError {
	e := errUnsupportedGrant("the password grant is disabled")
	e.grpcCode = codes.FailedPrecondition
	return e
}

// errNotFound and errPermissionDenied exist only for gRPC methods; their
// OAuth2 renderings are never sent.
func errNotFound(name string) *grantError {
	return newGrantError(codeInvalidRequest, http.StatusNotFound, codes.NotFound, "%s not found", clip(name))
}

func errPermissionDenied(format string, args ...any) *grantError {
	return newGrantError(codeInvalidRequest, http.StatusForbidden, codes.PermissionDenied, format, args...)
}

// The one answer to every failed client authentication.
func errBadClient() *grantError { return errInvalidClient("client authentication failed") }

func errRateLimited(wait time.Duration) *grantError {
	e := newGrantError(codeTemporarilyUnavailable, http.StatusTooManyRequests, codes.ResourceExhausted, "too many login attempts, retry later")
	e.retryAfter = wait
	return e
}

// errServer wraps a failure of Aegis itself (store, signing). A cancelled
// or timed-out request keeps its own gRPC code.
func errServer(what string, err error) *grantError {
	e := newGrantError(codeServerError, http.StatusInternalServerError, codes.Internal, "internal error")
	e.cause = fmt.Errorf("%s: %w", what, err)
	switch {
	case errors.Is(err, context.Canceled):
		e.grpcCode = codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		e.grpcCode = codes.DeadlineExceeded
		e.httpStatus = http.StatusServiceUnavailable
		e.code = codeTemporarilyUnavailable
		e.desc = "timed out"
	}
	return e
}

// asGrantError turns any error from the grant code into a grantError;
// anything unexpected is a server error.
func asGrantError(err error) *grantError {
	if ge, ok := errors.AsType[*grantError](err); ok {
		return ge
	}
	return errServer("unexpected", err)
}

// grpcError renders err as a gRPC status; a rate limit carries RetryInfo.
func grpcError(err error) error {
	ge := asGrantError(err)
	st := status.New(ge.grpcCode, ge.desc)
	if ge.retryAfter > 0 {
		if d, derr := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(ge.retryAfter)}); derr == nil {
			st = d
		}
	}
	return st.Err()
}
