package cli

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Exit statuses. Most commands exit 0 or exitFailure; `photon iam check`
// answers with its status like grep (0 allowed, 1 denied) and so needs a
// third value for "could not decide".
const (
	exitOK      = 0
	exitFailure = 1
	exitError   = 2
)

// exitCodeError makes a command exit with a given status. Without err the
// command has already said everything (e.g. a denial printed on stdout)
// and nothing more is printed.
type exitCodeError struct {
	code int
	err  error
}

func (e *exitCodeError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitCodeError) Unwrap() error { return e.err }

// withExitCode wraps err (nil stays nil) to exit with code.
func withExitCode(code int, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := errors.AsType[*exitCodeError](err); ok {
		return err
	}
	return &exitCodeError{code: code, err: err}
}

// exitStatus reports err on stderr, if there is anything to report, and
// returns the process exit status for it.
func exitStatus(err error, stderr io.Writer) int {
	if err == nil {
		return exitOK
	}
	code := exitFailure
	if ee, ok := errors.AsType[*exitCodeError](err); ok {
		code = ee.code
		if ee.err == nil {
			return code
		}
	}
	fmt.Fprintf(stderr, "photon: %v\n", err)
	return code
}

// rpcError is a failed Aegis call explained for a person; the gRPC status
// stays reachable through Unwrap for callers that branch on the code.
type rpcError struct {
	msg string
	err error
}

func (e *rpcError) Error() string { return e.msg }
func (e *rpcError) Unwrap() error { return e.err }

// codeWords are the words Aegis puts before a message of these codes.
var codeWords = map[codes.Code]string{
	codes.NotFound:           "not found: ",
	codes.AlreadyExists:      "already exists: ",
	codes.FailedPrecondition: "failed precondition: ",
	codes.InvalidArgument:    "invalid argument: ",
}

// explainRPC turns a gRPC error of the call op against Aegis at endpoint
// into a message that says what to do. Aegis's status messages carry no
// secrets, so they are shown.
func explainRPC(op, endpoint string, err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("%s: %w", op, err)
	}
	// Aegis's messages may start with the words its code stands for
	// ("not found: org ..."), which the explanation below says already.
	msg := strings.TrimPrefix(st.Message(), codeWords[st.Code()])
	var text string
	switch st.Code() {
	case codes.Unauthenticated:
		text = fmt.Sprintf("not authenticated: %s (run photon login)", msg)
	case codes.PermissionDenied:
		text = "permission denied: " + msg
	case codes.NotFound:
		// Aegis answers NOT_FOUND also for what the caller may not see.
		text = "not found (or not visible to you): " + msg
	case codes.AlreadyExists:
		text = "already exists: " + msg
	case codes.Aborted:
		text = "conflict: " + msg + " (it changed since it was read: get it again, or leave out --etag)"
	case codes.FailedPrecondition:
		text = "refused: " + msg
	case codes.InvalidArgument, codes.OutOfRange:
		text = "invalid request: " + msg
	case codes.ResourceExhausted:
		text = "limit reached: " + msg
	case codes.Unavailable:
		text = fmt.Sprintf("cannot reach Aegis at %s: %s", endpoint, msg)
	case codes.DeadlineExceeded:
		text = fmt.Sprintf("Aegis at %s did not answer in time (see --timeout)", endpoint)
	case codes.Canceled:
		text = "cancelled"
	case codes.Unimplemented:
		text = fmt.Sprintf("Aegis at %s does not offer this call (%s); is --aegis-endpoint an Aegis of this version?", endpoint, msg)
	default:
		text = fmt.Sprintf("%s: %s", st.Code(), msg)
	}
	return &rpcError{msg: op + ": " + text, err: err}
}
