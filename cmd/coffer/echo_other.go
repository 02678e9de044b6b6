//go:build !linux

package main

import "os"

// noEcho is a no-op here: the password prompt echoes.
func noEcho(*os.File) func() { return func() {} }
