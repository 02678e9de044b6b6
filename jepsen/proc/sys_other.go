//go:build unix && !linux

package proc

import "syscall"

// sysProcAttr starts a node in its own process group. Unix systems other
// than Linux have no parent-death signal: a harness that dies without
// calling Cluster.Close leaves its nodes running, and they must be killed
// by hand (their PIDs are in the log's start markers).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

// checkExe cannot check without /proc: it trusts the wrapper to exec.
func checkExe(pid int, binary string) error { return nil }

// stopped is unknown without /proc: Stop and Cont do not wait for the
// signal to take effect.
func stopped(pid int) (all, known bool) { return false, false }
