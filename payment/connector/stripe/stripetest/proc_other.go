//go:build !linux

package stripetest

import "os/exec"

// dieWithParent does nothing where the kernel cannot tie a child's life
// to its parent's: Start's cleanup stops stripe-mock.
func dieWithParent(*exec.Cmd) {}
