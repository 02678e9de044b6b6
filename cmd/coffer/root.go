package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/coffer-dev/coffer/client"
)

// Exit codes.
const (
	exitOK       = 0
	exitError    = 1
	exitUsage    = 2 // a bad command line or missing input
	exitConflict = 3 // the server answered "conflict"
)

const defaultServer = "http://127.0.0.1:8080"

// app holds one invocation's I/O and global flags; the commands share it.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string

	root          *cobra.Command
	server        string
	user          string
	passwordStdin bool
	json          bool

	tty           bool          // stderr is a terminal: draw progress
	progressDelay time.Duration // how long a transfer runs before its progress is drawn
}

// usageError marks an error in how coffer was invoked (exit code 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usageErrorf(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// usageArgs marks the errors of an argument check as usage errors.
func usageArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil {
			return usageError{err}
		}
		return nil
	}
}

// run runs coffer with args (without the program name) and returns its exit
// code. Errors go to stderr as "coffer: message".
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv,
		tty: isTerminal(stderr), progressDelay: progressDelay}
	return a.execute(ctx, args)
}

// execute runs coffer with args and returns its exit code (see run).
func (a *app) execute(ctx context.Context, args []string) int {
	stdin, stdout, stderr := a.stdin, a.stdout, a.stderr
	root := a.newRoot()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(stderr, "coffer: %v\n", err)
	if errors.Is(err, client.ErrSessionEnded) {
		fmt.Fprintln(stderr, "The saved session has ended: run 'coffer login NAME'.")
	}
	code := exitCode(err)
	if code == exitUsage && cmd != nil {
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
		}
	}
	return code
}

// exitCode maps an error to coffer's exit code.
func exitCode(err error) int {
	var ue usageError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue), errors.Is(err, client.ErrInvalidConfig):
		return exitUsage
	case errors.Is(err, client.ErrConflict):
		return exitConflict
	}
	return exitError
}

func (a *app) newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "coffer",
		Short: "Coffer's command-line client",
		Long: `coffer talks to a Coffer cluster's HTTP API.

Credentials: the session token saved by 'coffer login' (in
$XDG_CONFIG_HOME/coffer, else ~/.config/coffer), else the user (--user,
COFFER_USER) and password (--password-stdin, COFFER_PASSWORD).

Exit codes: 0 ok, 1 error, 2 usage, 3 conflict.`,
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	groupCommand(root)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	pf := root.PersistentFlags()
	pf.StringVar(&a.server, "server", defaultServer, "comma-separated URLs of cluster nodes, tried in order (env COFFER_SERVER)")
	pf.StringVar(&a.user, "user", "admin", "user name (env COFFER_USER)")
	pf.BoolVar(&a.passwordStdin, "password-stdin", false, "read the password from the first line of stdin (else env COFFER_PASSWORD)")
	pf.BoolVar(&a.json, "json", false, "print results as JSON")
	a.root = root
	root.AddCommand(a.adminCommand())
	a.addSessionCommands(root)
	a.addFileCommands(root)
	root.AddCommand(a.syncCommand(), a.statusCommand())
	// cobra's completion command (bash, zsh, fish, powershell), made now
	// so that it is a group like the others. It keeps the output writer
	// set at this point.
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	root.InitDefaultCompletionCmd()
	if c, _, err := root.Find([]string{"completion"}); err == nil && c != root {
		groupCommand(c)
	}
	return root
}

// groupCommand makes cmd a group of subcommands: run without one, or with
// an unknown one, it is a usage error (cobra would print help and succeed).
func groupCommand(cmd *cobra.Command) *cobra.Command {
	cmd.Args = cobra.ArbitraryArgs
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return usageErrorf("%s needs a command: %s", cmd.CommandPath(), strings.Join(subcommandNames(cmd), ", "))
		}
		return usageErrorf("unknown command %q for %q", args[0], cmd.CommandPath())
	}
	return cmd
}

func subcommandNames(cmd *cobra.Command) []string {
	var names []string
	for _, c := range cmd.Commands() {
		if c.IsAvailableCommand() {
			names = append(names, c.Name())
		}
	}
	return names
}

// setting returns the flag's value if it was given, else the environment
// variable's if set, else the flag's default.
func (a *app) setting(flag, env, val string) string {
	if a.root.PersistentFlags().Changed(flag) {
		return val
	}
	if v := a.getenv(env); v != "" {
		return v
	}
	return val
}

// client builds the API client from the global flags and the environment:
// the saved session's token when there is one (see login), else the user
// and password.
func (a *app) client() (*client.Client, error) {
	servers, err := a.servers()
	if err != nil {
		return nil, err
	}
	if s, err := a.loadSession(); err != nil {
		return nil, err
	} else if s != nil && !a.passwordStdin && !a.otherUser(s.User) {
		return client.New(client.Config{Servers: servers, Token: s.Token})
	}
	password, err := a.password()
	if err != nil {
		return nil, err
	}
	return client.New(client.Config{
		Servers:  servers,
		User:     a.setting("user", "COFFER_USER", a.user),
		Password: password,
	})
}

// otherUser reports whether --user or COFFER_USER names someone other
// than user (the saved session's): an explicit user wins over the session,
// so a command never runs silently as the wrong user.
func (a *app) otherUser(user string) bool {
	if !a.root.PersistentFlags().Changed("user") && a.getenv("COFFER_USER") == "" {
		return false
	}
	return !strings.EqualFold(a.setting("user", "COFFER_USER", a.user), user)
}

// servers returns the server URLs from --server or COFFER_SERVER.
func (a *app) servers() ([]string, error) {
	var servers []string
	server := a.setting("server", "COFFER_SERVER", a.server)
	if !a.root.PersistentFlags().Changed("server") && a.getenv("COFFER_SERVER") == "" {
		if saved := a.savedServer(); saved != "" {
			server = saved
		}
	}
	for s := range strings.SplitSeq(server, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if !strings.Contains(s, "://") {
			s = "http://" + s
		}
		servers = append(servers, s)
	}
	if len(servers) == 0 {
		return nil, usageErrorf("--server: no server given")
	}
	return servers, nil
}

// password reads the password from stdin (--password-stdin) or the
// environment. It does not prompt: golang.org/x/term is not a dependency.
func (a *app) password() (string, error) {
	if a.passwordStdin {
		line, err := bufio.NewReader(a.stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", fmt.Errorf("reading the password from stdin: %w", err)
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			return "", usageErrorf("--password-stdin: no password on stdin")
		}
		return line, nil
	}
	if p := a.getenv("COFFER_PASSWORD"); p != "" {
		return p, nil
	}
	return "", usageErrorf("a password is needed: set COFFER_PASSWORD or pass it on stdin with --password-stdin")
}
