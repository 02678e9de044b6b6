// Package proc builds, starts, signals and restarts real cofferd node
// processes for the fault harness, and keeps each node's log.
//
// A Cluster runs the nodes of one test: Start boots them (the first
// boot forms a new cluster with --bootstrap-expect set to the number of
// initial nodes, each joining the others' gossip addresses) and waits for
// every node's /readyz. Kill (SIGKILL), Stop and Cont (SIGSTOP and
// SIGCONT) and Restart (same data directory, no bootstrap) are the
// process faults; Add starts a node that joins the running cluster and
// Remove forgets one. Close kills whatever still runs.
//
// Node i keeps its data in Config.Dir/nodes/<name> and appends its
// stdout and stderr to Config.Dir/logs/<name>.log, with a marker line at
// every start and exit, so a run's logs survive restarts and failures.
//
// A node never outlives the harness: on Linux every node is started
// with a parent-death signal of SIGKILL, so a harness that dies, even by
// SIGKILL, takes its nodes with it. Other Unix systems have no such
// signal: there the harness must call Close (see sys_other.go). The
// package builds only on Unix (it needs SIGSTOP).
//
// A node can run inside a network namespace: NodeSpec.Wrap is a command
// prefix such as "ip netns exec NS". The wrapper must exec cofferd in
// place (ip netns exec does, unless in batch mode) so that the PID the
// package signals is cofferd's own; on Linux each start checks that
// through /proc/PID/exe once the node is ready.
package proc
