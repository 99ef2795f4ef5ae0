package iotpay

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

func TestErrorString(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  *Error
		want string
	}{
		{"plain", Errorf(EINVALID, "bad amount %d", -1), "invalid: bad amount -1"},
		{"wrapped", Wrap(EUNAVAILABLE, "store down", io.ErrUnexpectedEOF), "unavailable: store down: unexpected EOF"},
		{"literal percent", Errorf(EINVALID, "100%% sure"), "invalid: 100% sure"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.err.Error(); got != tc.want {
				t.Errorf("Error() = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestErrorUnwrap(t *testing.T) {
	err := Wrap(EINTERNAL, "cannot write", io.ErrShortWrite)
	if !errors.Is(err, io.ErrShortWrite) {
		t.Error("errors.Is does not see the wrapped error")
	}
	if Errorf(EINVALID, "x").Unwrap() != nil {
		t.Error("Errorf has a wrapped error")
	}
}

func TestErrorCode(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want Code
	}{
		{"nil", nil, ""},
		{"invalid", Errorf(EINVALID, "x"), EINVALID},
		{"not found", Errorf(ENOTFOUND, "x"), ENOTFOUND},
		{"conflict", Errorf(ECONFLICT, "x"), ECONFLICT},
		{"unauthorized", Wrap(EUNAUTHORIZED, "x", io.EOF), EUNAUTHORIZED},
		{"replay", Errorf(EREPLAY, "x"), EREPLAY},
		{"declined", Errorf(EDECLINED, "x"), EDECLINED},
		{"unavailable", Errorf(EUNAVAILABLE, "x"), EUNAVAILABLE},
		{"internal", Errorf(EINTERNAL, "x"), EINTERNAL},
		{"wrapped by fmt", fmt.Errorf("charging: %w", Errorf(EDECLINED, "limit")), EDECLINED},
		{"joined", errors.Join(io.EOF, Errorf(EREPLAY, "x")), EREPLAY},
		{"plain error", io.EOF, EINTERNAL},
		{"plain error wrapping nothing of ours", fmt.Errorf("x: %w", io.EOF), EINTERNAL},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ErrorCode(tc.err); got != tc.want {
				t.Errorf("ErrorCode = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestErrorMessage(t *testing.T) {
	secret := errors.New("dial tcp 10.0.0.7:5432: password authentication failed for user payments")
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"nil", nil, ""},
		{"caller error", Errorf(EINVALID, "unknown currency %q", "XXX"), `unknown currency "XXX"`},
		{"detail kept from the caller", Wrap(EUNAUTHORIZED, "cannot open keystore", secret), "cannot open keystore"},
		{"wrapped by fmt", fmt.Errorf("context: %w", Errorf(EDECLINED, "daily limit reached")), "daily limit reached"},
		{"internal hidden", Errorf(EINTERNAL, "sqlite: disk I/O error at page 17"), "internal error"},
		{"internal with detail hidden", Wrap(EINTERNAL, "cannot store payment", secret), "internal error"},
		{"plain error hidden", secret, "internal error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ErrorMessage(tc.err)
			if got != tc.want {
				t.Errorf("ErrorMessage = %q, want %q", got, tc.want)
			}
			if strings.Contains(got, "password") || strings.Contains(got, "10.0.0.7") {
				t.Errorf("ErrorMessage leaks internal detail: %q", got)
			}
		})
	}
}

func TestErrorCodeOfTypedNil(t *testing.T) {
	var e *Error
	var err error = e
	if got := ErrorCode(err); got != EINTERNAL {
		t.Errorf("ErrorCode(typed nil) = %q", got)
	}
	if got := ErrorMessage(err); got != "internal error" {
		t.Errorf("ErrorMessage(typed nil) = %q", got)
	}
}
