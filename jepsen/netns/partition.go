package netns

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
)

// nftTable is created empty in the hub namespace, on the bridge that every
// frame between two hosts, or between a host and the harness, crosses.
// Partition fills the set blocked with (source, destination) address pairs;
// Lossy fills the chain loss with one rule per lossy host's port. Dropping
// on the bridge is silent for the sender, as on a real network: a drop in
// the sender's own output hook would instead fail its UDP sends with EPERM.
const nftTable = `table bridge coffer_jepsen {
	set blocked {
		type ipv4_addr . ipv4_addr
	}
	chain loss {
	}
	chain forward {
		type filter hook forward priority filter; policy accept;
		ip saddr . ip daddr @blocked drop
		jump loss
	}
}
`

// Grudge says which hosts each host cannot talk to: every packet between
// host i and the hosts in Grudge[i] is dropped, in both directions. Keys
// and values are host indices; the harness address is never part of a
// grudge.
type Grudge map[int][]int

// Partition replaces the current partition with g, in one nft transaction
// on the bridge, so every host sees the new partition at the same moment.
// Every IPv4 packet (TCP, UDP, ICMP; new or established connections)
// between a pair of hosts named by g is dropped; ARP is not, and traffic
// between any host and the harness address never is.
func (n *Net) Partition(ctx context.Context, g Grudge) error {
	if err := n.checkGrudge(g); err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return ErrClosed
	}
	set := map[string]bool{}
	for i, peers := range g {
		for _, j := range peers {
			a, b := n.hosts[i].Addr.String(), n.hosts[j].Addr.String()
			set[a+" . "+b], set[b+" . "+a] = true, true
		}
	}
	pairs := slices.Sorted(maps.Keys(set))
	script := "flush set bridge coffer_jepsen blocked\n"
	if len(pairs) > 0 {
		script += "add element bridge coffer_jepsen blocked { " + strings.Join(pairs, ", ") + " }\n"
	}
	if err := n.r.nft(ctx, n.hub, script); err != nil {
		return err
	}
	n.log.Info("partition", "grudge", map[int][]int(g))
	return nil
}

// Heal removes every partition: no host blocks any other.
func (n *Net) Heal(ctx context.Context) error {
	return n.Partition(ctx, nil)
}

func (n *Net) checkGrudge(g Grudge) error {
	var errs []error
	for i, peers := range g {
		if i < 0 || i >= len(n.hosts) {
			errs = append(errs, fmt.Errorf("grudge holder %d is not a host (0..%d)", i, len(n.hosts)-1))
		}
		for _, j := range peers {
			switch {
			case j < 0 || j >= len(n.hosts):
				errs = append(errs, fmt.Errorf("host %d's grudge names %d, not a host (0..%d)", i, j, len(n.hosts)-1))
			case j == i:
				errs = append(errs, fmt.Errorf("host %d's grudge names itself", i))
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrInvalidArgument, errors.Join(errs...))
	}
	return nil
}

// IsolateOne cuts host i off from the other n-1 hosts (it still reaches the
// harness). It returns the grudge and a description such as
// "isolate n2 | n1 n3".
func IsolateOne(n, i int) (Grudge, string) {
	var rest []int
	for j := range n {
		if j != i {
			rest = append(rest, j)
		}
	}
	g := cut([]int{i}, rest)
	return g, "isolate " + names([]int{i}) + " | " + names(rest)
}

// SplitMajority splits the n hosts, chosen by rng, into a majority of
// n/2+1 and a minority of the rest that cannot see each other. With n < 3
// the minority is empty and the grudge too. The description reads
// "majority n1 n4 n5 | minority n2 n3".
func SplitMajority(n int, rng *rand.Rand) (Grudge, string) {
	perm := rng.Perm(n)
	maj, mino := perm[:n/2+1], perm[n/2+1:]
	slices.Sort(maj)
	slices.Sort(mino)
	return cut(maj, mino), "majority " + names(maj) + " | minority " + names(mino)
}

// Bridge picks, with rng, one bridge host and splits the others into two
// halves that cannot see each other, while the bridge host sees both (with
// 5 hosts: each half plus the bridge is a majority). With n < 3 the grudge
// is empty. The description reads "bridge n3 | n1 n5 | n2 n4".
func Bridge(n int, rng *rand.Rand) (Grudge, string) {
	if n < 1 {
		return Grudge{}, "bridge (no hosts)"
	}
	perm := rng.Perm(n)
	bridge, rest := perm[0], perm[1:]
	a, b := rest[:len(rest)/2], rest[len(rest)/2:]
	slices.Sort(a)
	slices.Sort(b)
	return cut(a, b), "bridge " + names([]int{bridge}) + " | " + names(a) + " | " + names(b)
}

// cut makes every host of a block every host of b, and back.
func cut(a, b []int) Grudge {
	g := Grudge{}
	if len(a) == 0 || len(b) == 0 {
		return g
	}
	for _, i := range a {
		g[i] = append([]int(nil), b...)
	}
	for _, j := range b {
		g[j] = append([]int(nil), a...)
	}
	return g
}

func names(hosts []int) string {
	s := make([]string, len(hosts))
	for k, h := range hosts {
		s[k] = hostName(h)
	}
	if len(s) == 0 {
		return "(none)"
	}
	return strings.Join(s, " ")
}
