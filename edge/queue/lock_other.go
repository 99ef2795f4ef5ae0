//go:build !unix

package queue

// lockDir does not lock where flock is missing: one Queue per directory is
// then the caller's duty.
func lockDir(dir string) (unlock func(), err error) { return func() {}, nil }
