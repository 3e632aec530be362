//go:build !linux

package demo

import "os/exec"

// setParentDeathSignal does nothing outside Linux: the demo stops its agents on SIGINT and
// SIGTERM only.
func setParentDeathSignal(*exec.Cmd) {}
