package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/coffer-dev/coffer/client"
)

// The files in the config dir.
const (
	sessionFile = "session.json" // the login token (mode 0600)
	configFile  = "config.json"  // settings saved by login: the servers
)

// savedSession is the session file: the token from login.
type savedSession struct {
	User    string    `json:"user"`
	Admin   bool      `json:"admin,omitempty"`
	Token   string    `json:"token"`
	Expires time.Time `json:"expires"`
}

// savedConfig is the config file.
type savedConfig struct {
	Server string `json:"server,omitempty"` // comma-separated URLs
}

// configDir is $XDG_CONFIG_HOME/coffer, else $HOME/.config/coffer; "" if
// neither variable is set.
func (a *app) configDir() string {
	if d := a.getenv("XDG_CONFIG_HOME"); d != "" {
		return filepath.Join(d, "coffer")
	}
	if h := a.getenv("HOME"); h != "" {
		return filepath.Join(h, ".config", "coffer")
	}
	return ""
}

// readConfigJSON decodes the named file of the config dir into v; ok is
// false when there is no such file.
func (a *app) readConfigJSON(name string, v any) (ok bool, err error) {
	dir := a.configDir()
	if dir == "" {
		return false, nil
	}
	data, err := os.ReadFile(filepath.Join(dir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return false, fmt.Errorf("%s: %w", filepath.Join(dir, name), err)
	}
	return true, nil
}

// writeConfigJSON writes v as the named file of the config dir, mode 0600,
// atomically.
func (a *app) writeConfigJSON(name string, v any) error {
	dir := a.configDir()
	if dir == "" {
		return errors.New("no config dir: set XDG_CONFIG_HOME or HOME")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+name+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(append(data, '\n')); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), filepath.Join(dir, name))
}

// loadSession returns the saved session, nil if there is none.
func (a *app) loadSession() (*savedSession, error) {
	var s savedSession
	ok, err := a.readConfigJSON(sessionFile, &s)
	if err != nil || !ok || s.Token == "" {
		return nil, err
	}
	return &s, nil
}

// savedServer returns the servers saved by login ("" if none).
func (a *app) savedServer() string {
	var c savedConfig
	if ok, err := a.readConfigJSON(configFile, &c); err != nil || !ok {
		return ""
	}
	return c.Server
}

// loginPassword reads the password for login: --password-stdin, else
// COFFER_PASSWORD, else a prompt when stdin is a terminal.
func (a *app) loginPassword(name string) (string, error) {
	if a.passwordStdin || a.getenv("COFFER_PASSWORD") != "" {
		return a.password()
	}
	f, ok := a.stdin.(*os.File)
	if !ok {
		return "", usageErrorf("a password is needed: pass it on stdin with --password-stdin or set COFFER_PASSWORD")
	}
	if st, err := f.Stat(); err != nil || st.Mode()&os.ModeCharDevice == 0 {
		return "", usageErrorf("a password is needed: pass it on stdin with --password-stdin or set COFFER_PASSWORD")
	}
	fmt.Fprintf(a.stderr, "Password for %s: ", name)
	restore := noEcho(f)
	line, err := bufio.NewReader(f).ReadString('\n')
	restore()
	fmt.Fprintln(a.stderr)
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", usageErrorf("no password given")
	}
	return line, nil
}

func (a *app) addSessionCommands(root *cobra.Command) {
	root.AddCommand(&cobra.Command{
		Use:   "login NAME",
		Short: "Log in and keep the session token in the config dir",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			servers, err := a.servers()
			if err != nil {
				return err
			}
			if a.configDir() == "" {
				return usageErrorf("no config dir to keep the token in: set XDG_CONFIG_HOME or HOME")
			}
			password, err := a.loginPassword(args[0])
			if err != nil {
				return err
			}
			c, err := client.New(client.Config{Servers: servers})
			if err != nil {
				return err
			}
			s, err := c.Login(cmd.Context(), args[0], password)
			if err != nil {
				return err
			}
			if err := a.writeConfigJSON(sessionFile, savedSession{User: s.User, Admin: s.Admin, Token: s.Token, Expires: s.Expires}); err != nil {
				return fmt.Errorf("saving the session: %w", err)
			}
			// Remember the servers this session belongs to (from --server or
			// COFFER_SERVER), so the token is later sent to them and no
			// other; the servers of the login are those.
			if a.root.PersistentFlags().Changed("server") || a.getenv("COFFER_SERVER") != "" {
				srv := strings.Join(servers, ",")
				if err := a.writeConfigJSON(configFile, savedConfig{Server: srv}); err != nil {
					return fmt.Errorf("saving the config: %w", err)
				}
			}
			if a.json {
				return printJSON(a.stdout, map[string]any{"user": s.User, "admin": s.Admin, "expires": s.Expires})
			}
			_, err = fmt.Fprintf(a.stdout, "logged in as %s until %s\n", s.User, s.Expires.Local().Format(time.DateTime))
			return err
		},
	})
	var all bool
	logout := &cobra.Command{
		Use:   "logout",
		Short: "End the saved session and forget its token",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := a.loadSession()
			if err != nil {
				return err
			}
			if s == nil {
				_, err := fmt.Fprintln(a.stdout, "not logged in")
				return err
			}
			// End the saved session itself (whatever other credentials are
			// given): a logout with Basic credentials would end nothing.
			servers, err := a.servers()
			if err != nil {
				return err
			}
			c, err := client.New(client.Config{Servers: servers, Token: s.Token})
			if err != nil {
				return err
			}
			// An ended session cannot be ended again: forget it anyway.
			if err := c.Logout(cmd.Context(), all); err != nil && !errors.Is(err, client.ErrSessionEnded) {
				return err
			}
			if err := os.Remove(filepath.Join(a.configDir(), sessionFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			_, err = fmt.Fprintf(a.stdout, "logged out %s\n", s.User)
			return err
		},
	}
	logout.Flags().BoolVar(&all, "all", false, "end every session of the user")
	root.AddCommand(logout)
	root.AddCommand(&cobra.Command{
		Use:   "whoami",
		Short: "Show the user, their quota and usage",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			w, err := c.Whoami(cmd.Context())
			if err != nil {
				return err
			}
			if a.json {
				return printJSON(a.stdout, w)
			}
			role := ""
			if w.Admin {
				role = " (admin)"
			}
			quota := "unlimited"
			if w.Quota > 0 {
				quota = humanBytes(w.Quota)
			}
			fmt.Fprintf(a.stdout, "%s%s\nused %s in %d files of %s\n", w.User, role, humanBytes(w.Used), w.Files, quota)
			if !w.Expires.IsZero() {
				fmt.Fprintf(a.stdout, "session until %s\n", w.Expires.Local().Format(time.DateTime))
			}
			return nil
		},
	})
}
