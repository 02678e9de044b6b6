package raftgroup

import (
	"encoding/json"
	"errors"
	"fmt"
)

// CommandVersion is the first byte of every encoded command.
const CommandVersion = 1

// EncodeCommand encodes a group's command envelope as one Raft entry: the
// version byte, then the envelope as JSON.
func EncodeCommand(cmd any) ([]byte, error) {
	b, err := json.Marshal(cmd)
	if err != nil {
		return nil, err
	}
	return append([]byte{CommandVersion}, b...), nil
}

// DecodeCommand decodes an entry made by EncodeCommand into cmd.
func DecodeCommand(b []byte, cmd any) error {
	if len(b) == 0 || b[0] != CommandVersion {
		return errors.New("unknown command encoding")
	}
	if err := json.Unmarshal(b[1:], cmd); err != nil {
		return fmt.Errorf("decode command: %w", err)
	}
	return nil
}
