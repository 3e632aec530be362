package demo

import (
	"os/exec"
	"syscall"
)

// setParentDeathSignal has the kernel stop the agent when the demo process dies, however
// it dies, so that no agent outlives `make run` holding its port.
func setParentDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
