package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/coffer-dev/coffer/client"
)

// adminCommand is `coffer admin`: cluster administration.
func (a *app) adminCommand() *cobra.Command {
	admin := groupCommand(&cobra.Command{Use: "admin", Short: "Administer the cluster (admin users only)"})

	cluster := groupCommand(&cobra.Command{Use: "cluster", Short: "The cluster as a whole"})
	cluster.AddCommand(&cobra.Command{
		Use:   "status",
		Short: "Show the cluster's nodes, Raft groups and problems",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			st, err := c.ClusterStatus(cmd.Context())
			if err != nil {
				return err
			}
			if a.json {
				return printJSON(a.stdout, st)
			}
			return printClusterStatus(a.stdout, st)
		},
	})

	node := groupCommand(&cobra.Command{Use: "node", Short: "One node"})
	node.AddCommand(&cobra.Command{
		Use:   "remove NAME",
		Short: "Remove a node: move its replicas elsewhere, then drop it from the cluster",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			res, err := c.RemoveNode(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if a.json {
				return printJSON(a.stdout, res)
			}
			return printRemoveNode(a.stdout, res)
		},
	})

	admin.AddCommand(cluster, node, a.userCommand())
	return admin
}

// userCommand is `coffer admin user`: the users' accounts.
func (a *app) userCommand() *cobra.Command {
	user := groupCommand(&cobra.Command{Use: "user", Short: "Users: add, list, set passwords and quotas, log out, delete"})
	user.AddCommand(a.userAddCommand(), a.userListCommand(), a.userPasswdCommand(), a.userQuotaCommand(),
		a.userLogoutCommand(), a.userRmCommand())
	return user
}

// newPasswordStdinUsage is the help of the --password-stdin flag of the
// commands that set a password: there it is the new password, not the
// caller's.
const newPasswordStdinUsage = "read the new password from the first line of stdin (your own credentials then come from the saved session or COFFER_PASSWORD)"

// userResult is what the user commands without an answer of their own
// print with --json.
type userResult struct {
	User  string `json:"user"`
	OK    bool   `json:"ok"`
	Quota *int64 `json:"quota,omitempty"`
}

func (a *app) printUserResult(res userResult, format string, args ...any) error {
	if a.json {
		return printJSON(a.stdout, res)
	}
	_, err := fmt.Fprintf(a.stdout, format+"\n", args...)
	return err
}

func (a *app) userAddCommand() *cobra.Command {
	var admin, passwordStdin bool
	var quota sizeFlag
	cmd := &cobra.Command{
		Use:   "add NAME",
		Short: "Add a user (the password is asked for twice, or read from stdin with --password-stdin)",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			c, err := a.adminClient(passwordStdin)
			if err != nil {
				return err
			}
			password, err := a.newPassword(cmd.Context(), name, passwordStdin)
			if err != nil {
				return err
			}
			u, err := c.CreateUser(cmd.Context(), client.CreateUserRequest{Name: name, Password: password,
				Admin: admin, Quota: int64(quota)})
			if err != nil {
				return err
			}
			if a.json {
				return printJSON(a.stdout, u)
			}
			role := ""
			if u.Admin {
				role = "admin, "
			}
			_, err = fmt.Fprintf(a.stdout, "added user %s: %squota %s\n", u.Name, role, quotaString(u.Quota))
			return err
		},
	}
	cmd.Flags().BoolVar(&admin, "admin", false, "make the user an admin")
	cmd.Flags().Var(&quota, "quota", "the user's quota, e.g. 500MB, 10GiB; 0 = unlimited")
	cmd.Flags().BoolVar(&passwordStdin, "password-stdin", false, newPasswordStdinUsage)
	return cmd
}

func (a *app) userListCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the users with their quotas and usage",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			users, err := c.AllUsers(cmd.Context())
			if err != nil {
				return err
			}
			if a.json {
				return printJSON(a.stdout, users)
			}
			return printUsers(a.stdout, users)
		},
	}
}

// printUsers prints users as a table.
func printUsers(w io.Writer, users []client.UserInfo) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tADMIN\tQUOTA\tUSED\tFILES")
	for _, u := range users {
		admin := "no"
		if u.Admin {
			admin = "yes"
		}
		quota := "unlimited"
		if u.Quota != 0 {
			quota = humanBytes(u.Quota)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\n", u.Name, admin, quota, humanBytes(u.Used), u.Files)
	}
	return tw.Flush()
}

func (a *app) userPasswdCommand() *cobra.Command {
	var passwordStdin bool
	cmd := &cobra.Command{
		Use:   "passwd NAME",
		Short: "Set a user's password; their sessions end",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			c, err := a.adminClient(passwordStdin)
			if err != nil {
				return err
			}
			password, err := a.newPassword(cmd.Context(), name, passwordStdin)
			if err != nil {
				return err
			}
			if err := c.SetUserPassword(cmd.Context(), name, password); err != nil {
				return err
			}
			return a.printUserResult(userResult{User: name, OK: true}, "set the password of %s; their sessions have ended", name)
		},
	}
	cmd.Flags().BoolVar(&passwordStdin, "password-stdin", false, newPasswordStdinUsage)
	return cmd
}

func (a *app) userQuotaCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "quota NAME SIZE",
		Short: "Set a user's quota, e.g. 500MB, 10GiB; 0 = unlimited",
		Long: `Set a user's quota. SIZE is a number of bytes with an optional unit:
kB MB GB TB PB EB are powers of 1000, KiB MiB GiB TiB PiB EiB and K M G T P E
powers of 1024 (case does not matter); 0 or "unlimited" lifts the quota.
Usage already above a lowered quota stays; writes that add bytes are refused.`,
		Args: usageArgs(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			quota, err := parseSize(args[1])
			if err != nil {
				return usageError{err}
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			if err := c.SetUserQuota(cmd.Context(), name, quota); err != nil {
				return err
			}
			return a.printUserResult(userResult{User: name, OK: true, Quota: &quota}, "set the quota of %s to %s", name, quotaString(quota))
		},
	}
}

func (a *app) userLogoutCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "logout NAME",
		Short: "End every session of a user",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			c, err := a.client()
			if err != nil {
				return err
			}
			if err := c.LogoutUser(cmd.Context(), name); err != nil {
				return err
			}
			return a.printUserResult(userResult{User: name, OK: true}, "ended every session of %s", name)
		},
	}
}

func (a *app) userRmCommand() *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "rm NAME",
		Short: "Delete a user and their files (asks to type the name unless --yes)",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			tty, isTTY := a.stdinTerminal()
			if !yes && !isTTY {
				return usageErrorf("stdin is not a terminal to confirm on: pass --yes to delete user %s", name)
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			if !yes {
				fmt.Fprintf(a.stderr, "Deleting user %s deletes their files and ends their sessions.\n", name)
				typed, err := a.prompt(cmd.Context(), tty, bufio.NewReader(tty), "Type the user name to confirm: ", false)
				if err != nil {
					return err
				}
				if typed != name {
					return fmt.Errorf("user %s not deleted: the name typed does not match", name)
				}
			}
			if err := c.DeleteUser(cmd.Context(), name); err != nil {
				return err
			}
			return a.printUserResult(userResult{User: name, OK: true}, "deleted user %s", name)
		},
	}
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	return cmd
}

// adminClient is the client for a command that sets a password. With
// newPasswordStdin, stdin holds the new password, so the caller's own
// credentials must come from the saved session or COFFER_PASSWORD.
func (a *app) adminClient(newPasswordStdin bool) (*client.Client, error) {
	if newPasswordStdin && a.getenv("COFFER_PASSWORD") == "" {
		s, err := a.loadSession()
		if err != nil {
			return nil, err
		}
		if s == nil || a.otherUser(s.User) {
			return nil, usageErrorf("--password-stdin reads the new password here: for your own credentials log in first ('coffer login') or set COFFER_PASSWORD")
		}
	}
	return a.client()
}

// newPassword reads a new password for the named user: the first line of
// stdin with fromStdin, else typed twice at the terminal.
func (a *app) newPassword(ctx context.Context, name string, fromStdin bool) (string, error) {
	if fromStdin {
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
	tty, ok := a.stdinTerminal()
	if !ok {
		return "", usageErrorf("a password for %s is needed: type it at a terminal or pass it on stdin with --password-stdin", name)
	}
	r := bufio.NewReader(tty)
	first, err := a.prompt(ctx, tty, r, "New password for "+name+": ", true)
	if err != nil {
		return "", err
	}
	if first == "" {
		return "", usageErrorf("no password given")
	}
	again, err := a.prompt(ctx, tty, r, "Retype the password: ", true)
	if err != nil {
		return "", err
	}
	if again != first {
		return "", usageErrorf("the passwords do not match")
	}
	return first, nil
}

// stdinTerminal returns stdin when it is a terminal.
func (a *app) stdinTerminal() (*os.File, bool) {
	f, ok := a.stdin.(*os.File)
	if !ok {
		return nil, false
	}
	if st, err := f.Stat(); err != nil || st.Mode()&os.ModeCharDevice == 0 {
		return nil, false
	}
	return f, true
}

// prompt writes text to stderr and reads a line from the terminal tty
// through r, without echo if secret. An interrupt (ctx done) ends the
// wait with echo back on.
func (a *app) prompt(ctx context.Context, tty *os.File, r *bufio.Reader, text string, secret bool) (string, error) {
	fmt.Fprint(a.stderr, text)
	restore := func() {}
	if secret {
		restore = noEcho(tty)
	}
	type read struct {
		line string
		err  error
	}
	done := make(chan read, 1)
	go func() {
		line, err := r.ReadString('\n')
		done <- read{line, err}
	}()
	var got read
	select {
	case got = <-done:
	case <-ctx.Done():
		got.err = ctx.Err()
	}
	restore()
	if secret || got.err != nil {
		fmt.Fprintln(a.stderr)
	}
	if got.err != nil && !errors.Is(got.err, io.EOF) {
		return "", got.err
	}
	return strings.TrimRight(got.line, "\r\n"), nil
}

// quotaString formats a quota: "unlimited" for 0, else its size and, from
// 1 KiB on, its exact number of bytes.
func quotaString(q int64) string {
	if q == 0 {
		return "unlimited"
	}
	if q < 1024 {
		return humanBytes(q)
	}
	return fmt.Sprintf("%s (%d bytes)", humanBytes(q), q)
}

// sizeUnits are the units parseSize knows, in lower case.
var sizeUnits = map[string]int64{
	"": 1, "b": 1,
	"kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12, "pb": 1e15, "eb": 1e18,
	"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50, "e": 1 << 60,
	"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40, "pib": 1 << 50, "eib": 1 << 60,
}

// parseSize parses a byte count: a number (decimals allowed) with an
// optional unit, B, kB MB GB TB PB EB (powers of 1000), KiB MiB GiB TiB
// PiB EiB or K M G T P E (powers of 1024), in any case; "unlimited" is 0.
// The result must be a whole number of bytes that fits an int64.
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	if strings.EqualFold(t, "unlimited") {
		return 0, nil
	}
	i := strings.IndexFunc(t, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if i < 0 {
		i = len(t)
	}
	num, unit := t[:i], strings.TrimSpace(t[i:])
	mult, ok := sizeUnits[strings.ToLower(unit)]
	n, okNum := new(big.Rat).SetString(num)
	if num == "" || !ok || !okNum {
		return 0, fmt.Errorf("bad size %q: want a number of bytes with an optional unit, like 500MB, 10GiB or 0 (unlimited)", s)
	}
	n.Mul(n, new(big.Rat).SetInt64(mult))
	if !n.IsInt() {
		return 0, fmt.Errorf("bad size %q: not a whole number of bytes", s)
	}
	if !n.Num().IsInt64() {
		return 0, fmt.Errorf("bad size %q: too large", s)
	}
	return n.Num().Int64(), nil
}

// sizeFlag is a flag holding a size in bytes (see parseSize).
type sizeFlag int64

func (f *sizeFlag) Set(s string) error {
	n, err := parseSize(s)
	if err != nil {
		return err
	}
	*f = sizeFlag(n)
	return nil
}

func (f *sizeFlag) String() string { return strconv.FormatInt(int64(*f), 10) }

func (f *sizeFlag) Type() string { return "size" }
