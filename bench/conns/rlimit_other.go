//go:build !linux

package conns

func noFileLimit() uint64 { return 0 }

// RaiseNoFile does nothing here.
func RaiseNoFile() uint64 { return 0 }
