package sysgroup

import (
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

// Limits on what the group stores. They shape replicated state, so they are
// constants, the same on every replica.
const (
	// MaxClusterIDLen bounds Info.ClusterID, in bytes.
	MaxClusterIDLen = 64
	// MaxShards bounds Info.Shards.
	MaxShards = 1024
	// SigningKeyLen is the length of Info.SigningKey.
	SigningKeyLen = 32
	// MaxNameLen bounds a node name, in bytes.
	MaxNameLen = 63
	// MaxRequestIDLen bounds a request ID, in bytes.
	MaxRequestIDLen = 128
	// MaxSettingKeyLen and MaxSettingValueLen bound a setting; MaxSettings
	// bounds how many there are.
	MaxSettingKeyLen   = 128
	MaxSettingValueLen = 4096
	MaxSettings        = 1024
	// DedupLimit is how many request IDs the group remembers: the newest
	// DedupLimit commands with a request ID are deduplicated; an older ID
	// is applied again.
	DedupLimit = 10000
)

// Info is the cluster's identity, set once by Init.
type Info struct {
	ClusterID string    `json:"cluster_id"`
	Shards    int       `json:"shards"`
	CreatedAt time.Time `json:"created_at"`
	// SigningKey is the 32-byte HMAC key of session tokens.
	SigningKey []byte `json:"signing_key"`
	// AdminCreated records that the first admin user exists (set by
	// MarkAdminCreated, never by Init).
	AdminCreated bool `json:"admin_created"`
}

// NodeState is a node's place in its lifecycle. A node the group has no
// record of is unknown; it moves only forward: active, then removing, then
// removed, which is final.
type NodeState string

// The node states.
const (
	NodeActive   NodeState = "active"
	NodeRemoving NodeState = "removing"
	NodeRemoved  NodeState = "removed"
)

// NodeRecord is one node's lifecycle state and when it entered it.
type NodeRecord struct {
	Name  string    `json:"name"`
	State NodeState `json:"state"`
	Since time.Time `json:"since"`
}

// checkInfo validates the identity given to Init, reporting every problem.
func checkInfo(in *Info) error {
	var errs []error
	switch {
	case in.ClusterID == "":
		errs = append(errs, errors.New("ClusterID is required"))
	case len(in.ClusterID) > MaxClusterIDLen:
		errs = append(errs, fmt.Errorf("ClusterID is %d bytes, over %d", len(in.ClusterID), MaxClusterIDLen))
	case !utf8.ValidString(in.ClusterID):
		errs = append(errs, errors.New("ClusterID is not valid UTF-8"))
	}
	if in.Shards < 1 || in.Shards > MaxShards {
		errs = append(errs, fmt.Errorf("Shards %d: must be 1 to %d", in.Shards, MaxShards))
	}
	if len(in.SigningKey) != SigningKeyLen {
		errs = append(errs, fmt.Errorf("SigningKey is %d bytes, must be %d", len(in.SigningKey), SigningKeyLen))
	}
	if in.AdminCreated {
		errs = append(errs, errors.New("AdminCreated is set by MarkAdminCreated, not by Init"))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrInvalidArgument, errors.Join(errs...))
	}
	return nil
}

// checkName validates a node name: 1 to MaxNameLen bytes of valid UTF-8.
func checkName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: node name is empty", ErrInvalidArgument)
	case len(name) > MaxNameLen:
		return fmt.Errorf("%w: node name is %d bytes, over %d", ErrInvalidArgument, len(name), MaxNameLen)
	case !utf8.ValidString(name):
		return fmt.Errorf("%w: node name is not valid UTF-8", ErrInvalidArgument)
	}
	return nil
}

// checkRequestID validates a request ID: 1 to MaxRequestIDLen printable
// ASCII characters.
func checkRequestID(rid string) error {
	return checkToken("request ID", rid, MaxRequestIDLen)
}

// checkSetting validates a setting: a key of 1 to MaxSettingKeyLen printable
// ASCII characters and a value of at most MaxSettingValueLen bytes of valid
// UTF-8.
func checkSetting(key, value string) error {
	if err := checkToken("setting key", key, MaxSettingKeyLen); err != nil {
		return err
	}
	if len(value) > MaxSettingValueLen {
		return fmt.Errorf("%w: setting %q: value is %d bytes, over %d", ErrInvalidArgument, key, len(value), MaxSettingValueLen)
	}
	if !utf8.ValidString(value) {
		return fmt.Errorf("%w: setting %q: value is not valid UTF-8", ErrInvalidArgument, key)
	}
	return nil
}

func checkToken(what, s string, maxLen int) error {
	if s == "" || len(s) > maxLen {
		return fmt.Errorf("%w: a %s is 1 to %d characters", ErrInvalidArgument, what, maxLen)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return fmt.Errorf("%w: %s has a byte 0x%02x outside printable ASCII", ErrInvalidArgument, what, s[i])
		}
	}
	return nil
}

// checkTransition reports whether a node may go from state from ("" for
// unknown) to state to. Setting the current state again is allowed (a
// no-op).
func checkTransition(from, to NodeState) error {
	switch to {
	case NodeActive, NodeRemoving, NodeRemoved:
	default:
		return fmt.Errorf("%w: unknown node state %q", ErrInvalidArgument, to)
	}
	if from == to {
		return nil
	}
	var next NodeState
	switch from {
	case "":
		next = NodeActive
	case NodeActive:
		next = NodeRemoving
	case NodeRemoving:
		next = NodeRemoved
	}
	if to != next {
		f := string(from)
		if f == "" {
			f = "unknown"
		}
		return fmt.Errorf("%w: a node cannot go from %s to %s", ErrInvalidArgument, f, to)
	}
	return nil
}
