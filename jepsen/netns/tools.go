package netns

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// tools holds the absolute paths of the programs this package runs. ip and
// nft are required; tc and iptables are only needed by Slow and may be "".
type tools struct {
	ip, nft, tc, iptables string
}

// lookTool finds name in PATH, then in /usr/sbin and /sbin (which a
// non-login root shell or a test may lack in PATH).
func lookTool(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		if abs, err := filepath.Abs(p); err == nil {
			return abs
		}
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// findTools checks for root and the required tools, reporting all that is
// missing at once.
func findTools() (tools, error) {
	if os.Geteuid() != 0 {
		return tools{}, fmt.Errorf("%w: euid %d; network namespaces need root", ErrNotRoot, os.Geteuid())
	}
	t := tools{ip: lookTool("ip"), nft: lookTool("nft"), tc: lookTool("tc"), iptables: lookTool("iptables")}
	var missing []string
	if t.ip == "" {
		missing = append(missing, "ip (Debian package iproute2)")
	}
	if t.nft == "" {
		missing = append(missing, "nft (Debian package nftables)")
	}
	if len(missing) > 0 {
		return t, fmt.Errorf("%w: %s not found in PATH, /usr/sbin or /sbin", ErrMissingTool, strings.Join(missing, " and "))
	}
	return t, nil
}

// runner runs the tools and logs each command at Debug.
type runner struct {
	t   tools
	log *slog.Logger
}

// run runs path with args, feeding stdin if not empty. On failure the error
// wraps ErrCommand and holds the command line and its output.
func (r runner) run(ctx context.Context, stdin, path string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, path, args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	r.log.Debug("exec", "cmd", filepath.Base(path)+" "+strings.Join(args, " "), "stdin", stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%w: %s %s: %v: %s", ErrCommand, filepath.Base(path), strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return out, nil
}

// ip runs ip with args in the caller's namespace.
func (r runner) ip(ctx context.Context, args ...string) error {
	_, err := r.run(ctx, "", r.t.ip, args...)
	return err
}

// ipBatch runs one ip command per line in namespace ns ("" = the caller's),
// in one process, stopping at the first failure.
func (r runner) ipBatch(ctx context.Context, ns string, lines ...string) error {
	args := []string{"-batch", "-"}
	if ns != "" {
		args = append([]string{"-n", ns}, args...)
	}
	_, err := r.run(ctx, strings.Join(lines, "\n")+"\n", r.t.ip, args...)
	return err
}

// inNS runs a program inside namespace ns.
func (r runner) inNS(ctx context.Context, ns, stdin, path string, args ...string) error {
	_, err := r.run(ctx, stdin, r.t.ip, append([]string{"netns", "exec", ns, path}, args...)...)
	return err
}

// nft applies an nft script (one transaction) inside namespace ns.
func (r runner) nft(ctx context.Context, ns, script string) error {
	return r.inNS(ctx, ns, script, r.t.nft, "-f", "-")
}

// Available reports whether this process can build test networks: nil if it
// runs as root, ip and nft exist, and the kernel can create a network
// namespace holding a bridge, a veth pair and an nftables table. Otherwise
// the error wraps ErrNotRoot, ErrMissingTool or ErrUnsupported and says
// exactly what is missing, so the harness can run process faults only.
// It creates and removes a scratch namespace named cjprobe<pid>-<random>.
// Slow's needs (tc netem, or iptables with NFQUEUE) are checked by
// (*Net).DelayMethod instead.
func Available(ctx context.Context) error {
	t, err := findTools()
	if err != nil {
		return err
	}
	r := runner{t: t, log: slog.New(slog.DiscardHandler)}
	probe := fmt.Sprintf("cjprobe%d-%x", os.Getpid(), rand.Uint32())
	if err := r.ip(ctx, "netns", "add", probe); err != nil {
		return fmt.Errorf("%w: cannot create a network namespace: %w", ErrUnsupported, err)
	}
	defer func() { _ = r.ip(context.WithoutCancel(ctx), "netns", "del", probe) }() // best effort: the probe holds nothing
	var errs []error
	if err := r.ipBatch(ctx, probe, "link add pbr type bridge", "link add pa type veth peer name pb", "link set pa master pbr"); err != nil {
		errs = append(errs, fmt.Errorf("bridge and veth: %w", err))
	}
	if err := r.nft(ctx, probe, "add table bridge coffer_probe\n"); err != nil {
		errs = append(errs, fmt.Errorf("nftables: %w", err))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrUnsupported, errors.Join(errs...))
	}
	return nil
}
