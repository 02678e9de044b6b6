package netns

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"strconv"
	"time"
)

// linkState is a host's current link faults.
type linkState struct {
	delay, jitter time.Duration
	loss          float64
	delayer       *delayer // nfqueue method only
}

// delayProbe caches DelayMethod's answer.
type delayProbe struct {
	done   bool
	method string
	err    error
}

// Delay methods, as DelayMethod names them.
const (
	// DelayNetem: tc netem on the host's eth0, in the kernel.
	DelayNetem = "netem"
	// DelayNFQueue: an iptables NFQUEUE rule in the host's namespace and a
	// delayer in this process (for kernels built without sch_netem).
	DelayNFQueue = "nfqueue"
)

// DelayMethod says how Slow delays packets on this machine: DelayNetem if
// tc netem works, else DelayNFQueue if iptables exists; otherwise the error
// wraps ErrUnsupported and says why. The answer is probed once (in the hub
// namespace) and cached.
func (n *Net) DelayMethod(ctx context.Context) (string, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.delayMethodLocked(ctx)
}

func (n *Net) delayMethodLocked(ctx context.Context) (string, error) {
	if n.delay.done {
		return n.delay.method, n.delay.err
	}
	var why []error
	if n.r.t.tc == "" {
		why = append(why, errors.New("tc not found (Debian package iproute2)"))
	} else {
		_, err := n.r.run(ctx, "", n.r.t.tc, "-n", n.hub, "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms")
		if ctx.Err() != nil {
			return "", err // not an answer: do not cache it
		}
		if err == nil {
			_, err = n.r.run(ctx, "", n.r.t.tc, "-n", n.hub, "qdisc", "del", "dev", "lo", "root")
			n.delay = delayProbe{done: true, method: DelayNetem, err: err}
			return n.delay.method, n.delay.err
		}
		why = append(why, fmt.Errorf("tc netem: %w", err))
	}
	if n.r.t.iptables == "" {
		why = append(why, errors.New("iptables not found (needed for the NFQUEUE fallback)"))
		n.delay = delayProbe{done: true, err: fmt.Errorf("%w: no way to delay packets: %w", ErrUnsupported, errors.Join(why...))}
	} else {
		n.delay = delayProbe{done: true, method: DelayNFQueue}
		n.log.Debug("tc netem unavailable; Slow uses NFQUEUE", "why", errors.Join(why...))
	}
	return n.delay.method, n.delay.err
}

// Slow delays every packet that host sends by delay, varied uniformly by up
// to ±jitter (0 ≤ jitter ≤ delay), until ClearLinks or Slow with delay 0.
// Round trips through the host therefore take at least delay-jitter longer;
// its traffic with the harness is delayed too. Loss set by Lossy stays.
// With jitter, packets may be reordered (as with netem). With DelayNFQueue
// the delaying happens in this process: if it dies, the host's packets pass
// undelayed (never lost).
func (n *Net) Slow(ctx context.Context, host int, delay, jitter time.Duration) error {
	if err := n.checkHost(host); err != nil {
		return err
	}
	if delay < 0 || jitter < 0 || jitter > delay {
		return fmt.Errorf("%w: delay %v, jitter %v (want 0 ≤ jitter ≤ delay)", ErrInvalidArgument, delay, jitter)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return ErrClosed
	}
	if delay == 0 {
		return n.clearDelayLocked(ctx, host)
	}
	method, err := n.delayMethodLocked(ctx)
	if err != nil {
		return err
	}
	h, st := n.hosts[host], &n.links[host]
	switch method {
	case DelayNetem:
		if _, err := n.r.run(ctx, "", n.r.t.tc, "-n", h.NS, "qdisc", "replace", "dev", "eth0", "root", "netem",
			"delay", usec(delay), usec(jitter)); err != nil {
			return err
		}
	case DelayNFQueue:
		if st.delayer == nil {
			d, err := startDelayer(filepath.Join(netnsDir, h.NS), n.log.With("host", h.Name))
			if err != nil {
				return err
			}
			d.set(delay, jitter)
			if err := n.iptables(ctx, h.NS, "-A"); err != nil {
				d.stop()
				return err
			}
			st.delayer = d
		}
		st.delayer.set(delay, jitter)
	}
	st.delay, st.jitter = delay, jitter
	n.log.Info("slow link", "host", h.Name, "delay", delay, "jitter", jitter, "method", method)
	return nil
}

// Lossy drops lossPercent (0..100) percent of the packets host sends, at
// random, until ClearLinks or Lossy with 0, silently, as a lossy link
// would. It is an nftables rule on the host's bridge port (numgen random),
// so it works without tc netem; the precision is 0.01 %. Its traffic to the
// harness is lossy too.
func (n *Net) Lossy(ctx context.Context, host int, lossPercent float64) error {
	if err := n.checkHost(host); err != nil {
		return err
	}
	if !(lossPercent >= 0 && lossPercent <= 100) {
		return fmt.Errorf("%w: loss %v%% is not in 0..100", ErrInvalidArgument, lossPercent)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return ErrClosed
	}
	loss := make([]float64, len(n.links))
	for i := range n.links {
		loss[i] = n.links[i].loss
	}
	loss[host] = lossPercent
	if err := n.setLossLocked(ctx, loss); err != nil {
		return err
	}
	n.log.Info("lossy link", "host", n.hosts[host].Name, "loss_percent", lossPercent)
	return nil
}

// setLossLocked rewrites the loss chain, one rule per lossy host, in one
// transaction.
func (n *Net) setLossLocked(ctx context.Context, loss []float64) error {
	script := "flush chain bridge coffer_jepsen loss\n"
	for i, pct := range loss {
		rule := fmt.Sprintf(`add rule bridge coffer_jepsen loss iifname "%s" `, hubPort(i))
		switch perMyriad := int(math.Round(pct * 100)); {
		case pct == 0:
			continue
		case perMyriad >= 10000:
			script += rule + "drop\n"
		default:
			script += rule + "numgen random mod 10000 < " + strconv.Itoa(max(perMyriad, 1)) + " drop\n"
		}
	}
	if err := n.r.nft(ctx, n.hub, script); err != nil {
		return err
	}
	for i := range n.links {
		n.links[i].loss = loss[i]
	}
	return nil
}

// ClearLinks removes every delay and loss from every host.
func (n *Net) ClearLinks(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return ErrClosed
	}
	var errs []error
	if err := n.setLossLocked(ctx, make([]float64, len(n.links))); err != nil {
		errs = append(errs, err)
	}
	for i := range n.hosts {
		if err := n.clearDelayLocked(ctx, i); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	n.log.Info("links cleared")
	return nil
}

func (n *Net) clearDelayLocked(ctx context.Context, host int) error {
	h, st := n.hosts[host], &n.links[host]
	if st.delay == 0 {
		return nil
	}
	if st.delayer != nil {
		err := n.iptables(ctx, h.NS, "-D")
		// Even if the rule stayed, --queue-bypass passes packets once no
		// one listens: the delay is gone either way.
		st.delayer.stop()
		st.delayer = nil
		st.delay, st.jitter = 0, 0
		return err
	}
	if _, err := n.r.run(ctx, "", n.r.t.tc, "-n", h.NS, "qdisc", "del", "dev", "eth0", "root"); err != nil {
		return err
	}
	st.delay, st.jitter = 0, 0
	return nil
}

// iptables adds (-A) or deletes (-D) the NFQUEUE rule in namespace ns.
func (n *Net) iptables(ctx context.Context, ns, verb string) error {
	args := append([]string{"-w", "5", "-t", "mangle", verb}, iptablesQueueRule...)
	return n.r.inNS(ctx, ns, "", n.r.t.iptables, args...)
}

func (n *Net) checkHost(host int) error {
	if host < 0 || host >= len(n.hosts) {
		return fmt.Errorf("%w: host %d is not in 0..%d", ErrInvalidArgument, host, len(n.hosts)-1)
	}
	return nil
}

// usec formats d for tc.
func usec(d time.Duration) string { return strconv.FormatInt(d.Microseconds(), 10) + "us" }
