package sysgroup

import (
	"errors"
	"fmt"

	"github.com/coffer-dev/coffer/internal/raftgroup"
)

// cmdType identifies a command. The values are stored in the Raft log and
// in dedup records: never renumber them.
type cmdType uint8

const (
	cmdInit cmdType = iota + 1
	cmdSetNodeState
	cmdSetSetting
	cmdMarkAdminCreated
)

// command is the envelope of one Raft entry. Time is the proposer's clock
// (Unix nanoseconds): the state machine never reads a clock, so every
// replica computes the same state.
type command struct {
	Type      cmdType `json:"t"`
	RequestID string  `json:"rid"`
	Time      int64   `json:"time"`

	Init    *Info          `json:"init,omitempty"`
	Node    *setNodeCmd    `json:"node,omitempty"`
	Setting *setSettingCmd `json:"setting,omitempty"`
}

type setNodeCmd struct {
	Name  string    `json:"name"`
	State NodeState `json:"state"`
}

type setSettingCmd struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// result is what applying a command returns, through the Raft future to
// the proposer, and what a dedup record stores. Cmd is the command type, so
// a request ID reused for another kind of command is refused.
type result struct {
	Cmd  cmdType     `json:"t"`
	Code string      `json:"code,omitempty"`
	Msg  string      `json:"msg,omitempty"`
	Info *Info       `json:"info,omitempty"`
	Node *NodeRecord `json:"node,omitempty"`
}

// refusal builds the result of a refused command from err, which wraps
// one of the sentinels.
func refusal(t cmdType, err error) *result {
	return &result{Cmd: t, Code: codeOf(err), Msg: err.Error()}
}

// err turns a refusal back into an error wrapping its sentinel.
func (r *result) err() error {
	if r.Code == codeOK {
		return nil
	}
	s := sentinelOf(r.Code)
	if r.Msg == "" {
		return s
	}
	// Msg already names the sentinel (it is the original error's text);
	// keep it as is and wrap the sentinel for errors.Is.
	return &refusedError{msg: r.Msg, sentinel: s}
}

// refusedError is a refusal computed by the state machine.
type refusedError struct {
	msg      string
	sentinel error
}

func (e *refusedError) Error() string { return e.msg }
func (e *refusedError) Unwrap() error { return e.sentinel }

var errBadCommand = errors.New("bad command")

// encodeCommand encodes c as one Raft entry (raftgroup's envelope: a
// version byte, then JSON).
func encodeCommand(c *command) ([]byte, error) { return raftgroup.EncodeCommand(c) }

func decodeCommand(b []byte) (*command, error) {
	c := new(command)
	if err := raftgroup.DecodeCommand(b, c); err != nil {
		return nil, fmt.Errorf("%w: %v", errBadCommand, err)
	}
	return c, nil
}
