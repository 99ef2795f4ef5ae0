//go:build !unix

package sim

// fdLimit is unknown here.
func fdLimit() int { return 0 }
