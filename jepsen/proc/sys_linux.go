//go:build linux

package proc

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// sysProcAttr starts a node in its own process group (a ^C at the
// harness's terminal reaches the harness, which then kills the nodes) and
// with SIGKILL as its parent-death signal: when the thread that forked it
// ends — the Cluster's forking thread, which lives as long as the
// harness process or until Close — the kernel kills the node. The signal
// survives the exec of a wrapper such as ip netns exec (it is cleared only
// by exec'ing a set-user-ID or file-capability binary).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// checkExe returns ErrNotCofferd unless pid runs binary: a wrapper that
// forks would leave its own PID to be signalled.
func checkExe(pid int, binary string) error {
	want, err := os.Stat(binary)
	if err != nil {
		return fmt.Errorf("%w: pid %d: %v", ErrNotCofferd, pid, err)
	}
	exe := fmt.Sprintf("/proc/%d/exe", pid)
	got, err := os.Stat(exe)
	if err != nil {
		return fmt.Errorf("%w: pid %d: %v", ErrNotCofferd, pid, err)
	}
	if !os.SameFile(want, got) {
		target, _ := os.Readlink(exe)
		return fmt.Errorf("%w: pid %d runs %s, not %s (does the wrapper fork instead of exec?)", ErrNotCofferd, pid, target, binary)
	}
	return nil
}

// stopped reports whether every thread of pid is in the stopped state
// ('T' in /proc/PID/task/TID/stat); known is false if that cannot be read.
func stopped(pid int) (all, known bool) {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
	if err != nil || len(tasks) == 0 {
		return false, false
	}
	n := 0
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue // the thread ended
		}
		// "TID (comm) S ...": comm may hold anything, so look after the
		// last ')'.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 || i+2 >= len(b) {
			return false, false
		}
		if b[i+2] == 'T' {
			n++
		}
	}
	return n == len(tasks), true
}
