package ledger

import "golang.org/x/sys/unix"

// setThreadNice sets the nice value of the calling thread alone: on Linux
// a thread id names the thread for setpriority.
func setThreadNice(nice int) error {
	return unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), nice)
}
