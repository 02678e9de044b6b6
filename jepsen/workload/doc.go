// Package workload holds the client workloads of the fault harness: each
// drives a running Coffer cluster through the client library, records
// every operation in a history.Recorder, and checks the history and the
// end state with the checkers of jepsen/check.
//
// The workloads ([Names]) are "register" (per-file compare-and-set
// registers, checked for linearizability), "set" (unique creates, all
// acknowledged ones present at the end), "upload" (random content, every
// acknowledged file byte-identical at the end), "feed" (change-feed
// readers, the feed gap-free and agreeing with every workload's commits)
// and "sync" (two sync devices editing one folder, converged at the end
// with no acknowledged edit lost or silently overwritten). See DESIGN.md
// for their operations, checks and what counts as acknowledged.
//
// An operation's outcome is decided by [Classify]: a write that the server
// refused is failed, a compare-and-set only when its precondition failed,
// any other error of a mutation unknown (it may have taken effect), a read
// that erred failed.
package workload
