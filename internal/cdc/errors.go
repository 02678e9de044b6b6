package cdc

import "errors"

var (
	// ErrInvalidConfig: a Config failed Validate, or Split was given a
	// negative worker count. New and Split return it wrapped.
	ErrInvalidConfig = errors.New("invalid chunking config")

	// errInvalidRead: the reader returned a count outside [0, len(p)].
	errInvalidRead = errors.New("cdc: reader returned an invalid count")
)
