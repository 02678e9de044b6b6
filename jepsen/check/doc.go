// Package check decides whether a recorded run of the fault harness kept
// Coffer's promises: each checker takes operations from jepsen/history (or
// plain maps of end state) and returns a Result that is valid or lists the
// first problems found.
//
// The checkers, with their exact rules in DESIGN.md:
//
//   - Register: per-file compare-and-set registers are linearizable
//     (porcupine, partitioned per key; a timed-out search is a failure).
//   - Set: every acknowledged create is present at the end.
//   - Bytes: every acknowledged upload downloads byte-identical (SHA-256).
//   - Feed: a namespace's change feed is gap-free, ordered, free of
//     duplicates, read to its head, and agrees with the acknowledged
//     commits (each at the seq its answer named).
//   - Converged and Edits: synced trees are identical and no acknowledged
//     edit is lost (it is at its path, in a conflicted copy, or in history)
//     or silently overwritten (its revision follows the one it was based
//     on).
//   - Replicas and BlockReplicas: replicas hold identical state; blocks
//     have enough verified replicas.
//   - Throughput: the run did real work in the windows given.
//
// Summary turns the results into the harness's one-line verdict.
//
// Checkers never panic on odd input: a malformed op is itself reported as a
// problem. An operation whose status is unknown may or may not have taken
// effect, and every checker allows both.
package check
