//go:build linux

package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The prompts of the user commands, on a pseudo-terminal.

// openPTY returns the two ends of a new pseudo-terminal.
func openPTY(t *testing.T) (master, tty *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Skipf("unlocking the pseudo-terminal: %v", err)
	}
	n, err := unix.IoctlGetUint32(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Skipf("pseudo-terminal number: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("opening the pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return m, s
}

// lockedBuffer is a bytes.Buffer safe for concurrent use.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// ttySession runs coffer with the pseudo-terminal as stdin.
type ttySession struct {
	t      *testing.T
	master *os.File
	fd     int // the terminal's
	stderr *lockedBuffer
	done   chan result
}

func startOnTTY(t *testing.T, env map[string]string, args ...string) *ttySession {
	master, tty := openPTY(t)
	s := &ttySession{t: t, master: master, fd: int(tty.Fd()), stderr: &lockedBuffer{}, done: make(chan result, 1)}
	go func() {
		var out bytes.Buffer
		code := run(context.Background(), args, tty, &out, s.stderr, func(k string) string { return env[k] })
		s.done <- result{code, out.String(), s.stderr.String()}
	}()
	return s
}

func (s *ttySession) echo() bool {
	tio, err := unix.IoctlGetTermios(s.fd, unix.TCGETS)
	if err != nil {
		s.t.Fatal(err)
	}
	return tio.Lflag&unix.ECHO != 0
}

// waitFor waits until cond holds (or fails the test after 10s).
func (s *ttySession) waitFor(what string, cond func() bool) {
	s.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			s.t.Fatalf("waiting for %s; stderr %q", what, s.stderr.String())
		}
		time.Sleep(time.Millisecond)
	}
}

// answer waits for the prompt (with echo off if secret) and types line.
func (s *ttySession) answer(prompt string, secret bool, line string) {
	s.t.Helper()
	s.waitFor(fmt.Sprintf("the prompt %q", prompt), func() bool {
		return strings.HasSuffix(s.stderr.String(), prompt) && (!secret || !s.echo())
	})
	if _, err := s.master.Write([]byte(line + "\n")); err != nil {
		s.t.Fatal(err)
	}
}

func (s *ttySession) wait() result {
	s.t.Helper()
	select {
	case r := <-s.done:
		return r
	case <-time.After(10 * time.Second):
		s.t.Fatalf("coffer did not finish; stderr %q", s.stderr.String())
		return result{}
	}
}

// echoed returns what the terminal echoed so far: it types a marker line
// (echo must be on again) and reads up to its echo.
func (s *ttySession) echoed() string {
	s.t.Helper()
	if !s.echo() {
		s.t.Fatal("echo is still off")
	}
	if _, err := s.master.Write([]byte("END\n")); err != nil {
		s.t.Fatal(err)
	}
	got := make(chan string, 1)
	go func() {
		var all []byte
		buf := make([]byte, 256)
		for !bytes.Contains(all, []byte("END")) {
			n, err := s.master.Read(buf)
			if err != nil {
				break
			}
			all = append(all, buf[:n]...)
		}
		got <- string(all)
	}()
	select {
	case out := <-got:
		before, _, _ := strings.Cut(out, "END")
		return before
	case <-time.After(10 * time.Second):
		s.t.Fatal("the terminal echoed nothing")
		return ""
	}
}

func TestUserAddPromptsTwiceWithoutEcho(t *testing.T) {
	srv := newUserServer(t)
	s := startOnTTY(t, srv.env(), "admin", "user", "add", "dave", "--quota", "1GB")
	s.answer("New password for dave: ", true, "dave-s3cret")
	s.answer("Retype the password: ", true, "dave-s3cret")
	r := s.wait()
	check(t, r, 0, "added user dave: quota 953.7 MiB (1000000000 bytes)\n", "New password for dave: \nRetype the password: \n")
	if users, pws, _ := srv.state(); pws["dave"] != "dave-s3cret" || users["dave"].Quota != 1e9 {
		t.Errorf("dave %+v, password %q", users["dave"], pws["dave"])
	}
	if e := s.echoed(); strings.Contains(e, "s3cret") {
		t.Errorf("the password was echoed: %q", e)
	}
}

func TestUserPasswdPromptMismatch(t *testing.T) {
	srv := newUserServer(t)
	s := startOnTTY(t, srv.env(), "admin", "user", "passwd", "bob")
	s.answer("New password for bob: ", true, "one")
	s.answer("Retype the password: ", true, "two")
	r := s.wait()
	if r.code != 2 || !strings.Contains(r.stderr, "coffer: the passwords do not match") {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
	if _, pws, reqs := srv.state(); pws["bob"] != "bob-pw" || len(reqs) != 0 {
		t.Errorf("bob's password %q, requests %q", pws["bob"], reqs)
	}
	s.echoed() // echo is back on
}

func TestUserRmConfirms(t *testing.T) {
	srv := newUserServer(t)
	s := startOnTTY(t, srv.env(), "admin", "user", "rm", "bob")
	s.answer("Type the user name to confirm: ", false, "bob")
	check(t, s.wait(), 0, "deleted user bob\n",
		"Deleting user bob deletes their files and ends their sessions.\nType the user name to confirm: ")
	if users, _, reqs := srv.state(); users["bob"].Name != "" || len(reqs) != 1 {
		t.Errorf("bob %+v, requests %q", users["bob"], reqs)
	}

	s = startOnTTY(t, srv.env(), "admin", "user", "rm", "alice")
	s.answer("Type the user name to confirm: ", false, "alic")
	r := s.wait()
	if r.code != 1 || !strings.Contains(r.stderr, "coffer: user alice not deleted: the name typed does not match") {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
	if users, _, reqs := srv.state(); users["alice"].Name != "alice" || len(reqs) != 0 {
		t.Errorf("alice %+v, requests %q", users["alice"], reqs)
	}
}
