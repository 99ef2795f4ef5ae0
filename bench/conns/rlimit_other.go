//go:build !linux

package conns

// NoFileLimit is unknown here.
func NoFileLimit() uint64 { return 0 }
