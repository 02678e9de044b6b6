package history

import "errors"

var (
	// ErrPayload: an op's Input or Output is missing or is not the JSON
	// of the type asked for. DecodeInput and DecodeOutput return it
	// wrapped.
	ErrPayload = errors.New("bad op payload")

	// ErrFormat: a file given to ReadJSON or ReadTimelineJSON is not a
	// history or timeline this package wrote (bad JSON, another version,
	// an op with an unknown status). Returned wrapped.
	ErrFormat = errors.New("bad history file")
)
