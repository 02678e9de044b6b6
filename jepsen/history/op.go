package history

import (
	"encoding/json"
	"fmt"
	"time"
)

// Status is how an operation ended.
type Status string

// The statuses an operation can end with.
const (
	// StatusOK: the operation took effect; Output holds its result.
	StatusOK Status = "ok"
	// StatusFail: the operation definitely did not take effect.
	StatusFail Status = "fail"
	// StatusUnknown: the operation may or may not have taken effect.
	StatusUnknown Status = "unknown"
)

// Valid reports whether s is one of the three statuses.
func (s Status) Valid() bool {
	return s == StatusOK || s == StatusFail || s == StatusUnknown
}

// Operation kinds used by the harness's workloads. A kind is a free string;
// these are the ones the checkers know.
const (
	KindWrite = "write" // unconditional write of a register: RegisterInput → RegisterOutput
	// KindCAS is a conditional write: RegisterInput (ExpectRev) →
	// RegisterOutput. Record it as Fail only for a failed precondition
	// (HTTP 409): the register checker takes a failed CAS as proof that
	// the revision was not ExpectRev. A CAS refused for another reason is
	// recorded as Unknown.
	KindCAS      = "cas"
	KindRead     = "read"     // read of a register: no input → RegisterOutput
	KindCreate   = "create"   // create of a unique element (a path) of a set
	KindUpload   = "upload"   // upload of a whole file: UploadInput
	KindDownload = "download" // download of a whole file
	KindList     = "list"     // listing of a folder
	KindFeed     = "feed"     // a read of a change feed through a cursor
)

// Op is one operation of a history.
type Op struct {
	ID       int    `json:"id"`                 // index in the history, from 0
	Process  int    `json:"process"`            // the client (worker) that ran it
	Workload string `json:"workload,omitempty"` // e.g. "register"
	Kind     string `json:"kind"`               // e.g. KindWrite
	Key      string `json:"key,omitempty"`      // what it is about, e.g. a path
	// Input and Output are JSON; decode them with DecodeInput and
	// DecodeOutput. Output is set only for StatusOK.
	Input  json.RawMessage `json:"input,omitempty"`
	Output json.RawMessage `json:"output,omitempty"`
	// Call is when it was invoked and Return when it completed, both since
	// the history's start. Return is 0 for StatusUnknown.
	Call   time.Duration `json:"call"`
	Return time.Duration `json:"return,omitempty"`
	Status Status        `json:"status"`
	Err    string        `json:"err,omitempty"`  // the error, for fail and unknown
	Node   string        `json:"node,omitempty"` // the gateway it was sent to
}

// DecodeInput decodes the op's Input into v (a pointer).
func (o Op) DecodeInput(v any) error {
	return decode("input", o.Input, v)
}

// DecodeOutput decodes the op's Output into v (a pointer).
func (o Op) DecodeOutput(v any) error {
	return decode("output", o.Output, v)
}

func decode(what string, raw json.RawMessage, v any) error {
	if len(raw) == 0 {
		return fmt.Errorf("%w: no %s", ErrPayload, what)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrPayload, what, err)
	}
	return nil
}

// String describes the op in one line, for checker reports.
func (o Op) String() string {
	s := fmt.Sprintf("op %d (process %d) %s %q", o.ID, o.Process, o.Kind, o.Key)
	if len(o.Input) > 0 {
		s += " " + string(o.Input)
	}
	s += fmt.Sprintf(" [%v", o.Call)
	if o.Status != StatusUnknown {
		s += fmt.Sprintf(", %v", o.Return)
	}
	s += "] " + string(o.Status)
	if len(o.Output) > 0 {
		s += " " + string(o.Output)
	}
	if o.Err != "" {
		s += ": " + o.Err
	}
	return s
}

// RegisterInput is the input of KindWrite and KindCAS.
type RegisterInput struct {
	// Value is what is written (e.g. the file's content, or its hash).
	Value string `json:"value"`
	// ExpectRev is, for KindCAS only, the revision the file must be at
	// (IfMatch); 0 means that nothing may be live at the path (IfNoneMatch
	// on a path that never existed).
	ExpectRev uint64 `json:"expect_rev,omitempty"`
}

// RegisterOutput is the output of an ok KindWrite, KindCAS or KindRead.
// For a write or CAS, Rev is the revision the commit made. For a read, Rev
// and Value are what was read; Rev 0 means the file was not found.
type RegisterOutput struct {
	Rev   uint64 `json:"rev"`
	Value string `json:"value,omitempty"`
}

// UploadInput is the input of KindUpload: the SHA-256 (lower-case hex) of
// the bytes uploaded to Key, and their length.
type UploadInput struct {
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size,omitempty"`
}
