package conns

import "syscall"

// NoFileLimit is this process's open-file limit (the Go runtime has raised
// the soft limit to the hard one at start).
func NoFileLimit() uint64 {
	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) != nil {
		return 0
	}
	return l.Cur
}
