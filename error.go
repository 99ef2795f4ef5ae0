package iotpay

import (
	"errors"
	"fmt"
)

// Code is one of a small set of error codes. Each transport maps a code to
// its own status once (HTTP status, MQTT reason code, receipt code).
type Code string

// Error codes.
const (
	EINVALID      Code = "invalid"      // malformed or out-of-range input
	ENOTFOUND     Code = "not_found"    // no such object (for this tenant)
	ECONFLICT     Code = "conflict"     // clashes with existing state
	EUNAUTHORIZED Code = "unauthorized" // authentication or authorization failed
	EREPLAY       Code = "replay"       // a stale counter, challenge or reused request
	EDECLINED     Code = "declined"     // a valid request refused by a limit or rule
	EUNAVAILABLE  Code = "unavailable"  // try again later
	EINTERNAL     Code = "internal"     // a bug or an operating failure; detail is logged only
)

// Error is an error a caller may see: a code and a message safe to return.
// Err, when set, is internal detail for the log and is never returned.
type Error struct {
	Code    Code
	Message string
	Err     error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with code and a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Wrap returns an *Error that shows message to the caller and keeps err for the log.
func Wrap(code Code, message string, err error) *Error {
	return &Error{Code: code, Message: message, Err: err}
}

// ErrorCode returns the code of err, EINTERNAL for an error that is not an
// *Error, and "" for nil.
func ErrorCode(err error) Code {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) && e != nil {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the message of err safe to show a caller; the
// detail of an internal error is hidden.
func ErrorMessage(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) && e != nil && e.Code != EINTERNAL {
		return e.Message
	}
	return "internal error"
}
