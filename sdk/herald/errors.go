package herald

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Error is the error of a call that Herald (or the gRPC transport) answered
// with a status other than OK. Compare it with errors.Is against the
// sentinels below; status.FromError and status.Code read its gRPC status.
type Error struct {
	// Op is the call, e.g. "CreateNotification" or "Attach".
	Op string
	// Code is the gRPC status code.
	Code codes.Code
	// Message is Herald's message; for InvalidArgument it starts with the
	// field's name, e.g. "notification.title: must not be empty".
	Message string

	cause error
}

// Sentinels for errors.Is. An *Error matches the sentinel of its Code.
var (
	// ErrInvalidArgument: an argument broke a rule; the message names it.
	ErrInvalidArgument = &Error{Code: codes.InvalidArgument}
	// ErrNotFound: an ID does not exist for the user (or belongs to another).
	ErrNotFound = &Error{Code: codes.NotFound}
	// ErrUnavailable: Herald is not reachable or is shutting down; retry
	// with backoff.
	ErrUnavailable = &Error{Code: codes.Unavailable}
	// ErrUnimplemented: this Herald cannot do it, e.g. issue tokens without
	// a signing key.
	ErrUnimplemented = &Error{Code: codes.Unimplemented}
	// ErrDeadlineExceeded: the context's deadline passed. Such an error
	// also matches context.DeadlineExceeded.
	ErrDeadlineExceeded = &Error{Code: codes.DeadlineExceeded}
	// ErrCanceled: the context was cancelled. Such an error also matches
	// context.Canceled.
	ErrCanceled = &Error{Code: codes.Canceled}
	// ErrResourceExhausted: the request was too large for the transport.
	ErrResourceExhausted = &Error{Code: codes.ResourceExhausted}
	// ErrInternal: Herald failed; its log says why.
	ErrInternal = &Error{Code: codes.Internal}
)

// ErrClosed is returned by calls on a Client after Close.
var ErrClosed = errors.New("herald: client is closed")

// Error implements error.
func (e *Error) Error() string {
	op := e.Op
	if op == "" {
		op = "call"
	}
	if e.Message == "" {
		return fmt.Sprintf("herald: %s: %s", op, e.Code)
	}
	return fmt.Sprintf("herald: %s: %s: %s", op, e.Code, e.Message)
}

// Is reports whether target is the sentinel of e's code, or the context
// error that e's code stands for.
func (e *Error) Is(target error) bool {
	switch target {
	case context.DeadlineExceeded:
		return e.Code == codes.DeadlineExceeded
	case context.Canceled:
		return e.Code == codes.Canceled
	}
	t, ok := target.(*Error)
	return ok && t.Code == e.Code && (t.Message == "" || t.Message == e.Message) && (t.Op == "" || t.Op == e.Op)
}

// Unwrap returns the error beneath, such as the dial error of Attach, or nil.
func (e *Error) Unwrap() error { return e.cause }

// GRPCStatus returns the gRPC status, for status.FromError and status.Code.
func (e *Error) GRPCStatus() *status.Status { return status.New(e.Code, e.Message) }

// fromRPC turns the error of an RPC into an *Error.
func fromRPC(op string, err error) error {
	st, ok := status.FromError(err)
	if !ok {
		st = status.FromContextError(err)
	}
	return &Error{Op: op, Code: st.Code(), Message: st.Message(), cause: err}
}

func invalidUTF8(field string) error {
	return &Error{Code: codes.InvalidArgument, Message: field + ": is not valid UTF-8"}
}
