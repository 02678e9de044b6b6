//go:build unix

package proc

import "errors"

// Sentinel errors (test with errors.Is).
var (
	// ErrInvalidConfig: a Config or NodeSpec failed validation.
	ErrInvalidConfig = errors.New("invalid proc config")
	// ErrBuild: the cofferd binary could not be built.
	ErrBuild = errors.New("cannot build cofferd")
	// ErrNoNode: the index names no node, or a node that was removed.
	ErrNoNode = errors.New("no such node")
	// ErrNotRunning: the node has no running process (to signal).
	ErrNotRunning = errors.New("node not running")
	// ErrRunning: the node's process still runs (it cannot be started).
	ErrRunning = errors.New("node already running")
	// ErrExited: the node's process exited before it became ready.
	ErrExited = errors.New("node exited")
	// ErrNotReady: the node's /readyz did not answer 200 in time.
	ErrNotReady = errors.New("node not ready")
	// ErrNotCofferd: the PID the package would signal is not cofferd's
	// (a wrapper in NodeSpec.Wrap forked instead of exec'ing).
	ErrNotCofferd = errors.New("process is not cofferd")
	// ErrStuck: a process did not react to a signal (exit after SIGKILL,
	// stop after SIGSTOP, resume after SIGCONT) within Config.KillTimeout.
	ErrStuck = errors.New("process did not react to the signal")
	// ErrClosed: the Cluster was closed.
	ErrClosed = errors.New("cluster closed")
	// ErrStarted: Start was called a second time.
	ErrStarted = errors.New("cluster already started")
	// ErrNotStarted: Restart or Add before Start.
	ErrNotStarted = errors.New("cluster not started")
)
