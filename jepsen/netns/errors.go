package netns

import "errors"

// Sentinel errors. Every error this package returns wraps one of them (test
// with errors.Is); the wrapping text says exactly what went wrong.
var (
	// ErrNotRoot: network namespaces, veths, nftables and tc need root
	// (CAP_NET_ADMIN and CAP_SYS_ADMIN). Callers fall back to process faults.
	ErrNotRoot = errors.New("not root")
	// ErrMissingTool: a required program (ip from iproute2, nft from
	// nftables) was not found in PATH, /usr/sbin or /sbin. The text names
	// every missing one.
	ErrMissingTool = errors.New("missing tool")
	// ErrUnsupported: the kernel or the tools cannot do what was asked (no
	// network namespaces, no veth or bridge, no nf_tables; for Slow: neither
	// tc netem nor NFQUEUE through iptables).
	ErrUnsupported = errors.New("unsupported")
	// ErrInvalidConfig: a Config failed validation.
	ErrInvalidConfig = errors.New("invalid netns config")
	// ErrInvalidArgument: a host index, grudge, delay or loss percentage is
	// out of range.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrNoFreeSubnet: every automatic subnet 10.213.0.0/24 … 10.213.255.0/24
	// is held by a live run or overlaps an existing route.
	ErrNoFreeSubnet = errors.New("no free subnet")
	// ErrSubnetInUse: the configured subnet is held by another live run or
	// overlaps a route that already exists on this machine.
	ErrSubnetInUse = errors.New("subnet in use")
	// ErrClosed: the Net was closed.
	ErrClosed = errors.New("network closed")
	// ErrCommand: an ip, nft, tc or iptables command failed; the text holds
	// the command line and its output.
	ErrCommand = errors.New("command failed")
)
