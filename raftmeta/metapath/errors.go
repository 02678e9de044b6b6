package metapath

import (
	"errors"
	"fmt"
)

// ErrInvalidPath is the sentinel matched, via errors.Is, by every error that
// Clean and CleanName return.
var ErrInvalidPath = errors.New("invalid path")

// Error describes why a path or name was refused; errors.Is(err,
// ErrInvalidPath) is true.
type Error struct {
	// Path is the path or name as given by the caller.
	Path string
	// Reason says which rule Path breaks.
	Reason string
}

// Error returns a message such as `invalid path "a//b": empty component`.
func (e *Error) Error() string {
	return fmt.Sprintf("invalid path %q: %s", e.Path, e.Reason)
}

// Unwrap returns ErrInvalidPath.
func (e *Error) Unwrap() error {
	return ErrInvalidPath
}

func refuse(path, reason string) *Error {
	return &Error{Path: path, Reason: reason}
}
