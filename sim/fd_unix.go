//go:build unix

package sim

import "syscall"

// fdLimit is the process's limit on open files (RLIMIT_NOFILE, which the
// Go runtime raises to the hard limit at start), or 0 if unknown.
func fdLimit() int {
	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) != nil || l.Cur > 1<<30 {
		return 0
	}
	return int(l.Cur)
}
