package stripetest

import (
	"os/exec"
	"syscall"
)

// dieWithParent has the kernel kill stripe-mock when the test binary
// dies without running its cleanups (go test's -timeout, a kill).
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
