//go:build !linux

package main

import (
	"io"
	"os"
)

// noEcho is a no-op here: the password prompt echoes.
func noEcho(*os.File) func() { return func() {} }

// isTerminal reports false here: coffer does not know how to tell, so it
// draws no progress.
func isTerminal(io.Writer) bool { return false }
