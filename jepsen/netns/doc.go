// Package netns builds and faults a private test network of Linux network
// namespaces, one per test host, for the Coffer fault-injection harness.
//
// Create gives each host its own namespace and IPv4 address on a bridge that
// the calling process (the harness) reaches through its own address; Command
// runs a program (a cofferd) inside a host's namespace. Partition drops
// packets between hosts with nftables inside their namespaces (never between
// a host and the harness), Slow and Lossy degrade a host's outgoing link,
// and Heal and ClearLinks undo them. Close removes everything a run made;
// Sweep removes what dead runs left behind. The hosts have no route beyond
// their subnet, so nothing a test does can reach another machine.
//
// Everything needs root; Available says whether this machine can do it and,
// if not, exactly what is missing. See DESIGN.md beside this file for how it
// works and why.
package netns
