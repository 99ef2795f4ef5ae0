//go:build !linux

package ledger

import "errors"

// setThreadNice is Linux's only: elsewhere a thread's priority is the
// process's.
func setThreadNice(int) error { return errors.New("a thread's own priority is Linux's only") }
