// Package jepsen runs Coffer's fault-injection scenarios: it starts a
// cluster of real cofferd processes (each in its own network namespace when
// it can), drives the workloads of package jepsen/workload through the
// gateways while a seeded nemesis kills, pauses, partitions, slows and
// reconfigures the nodes, heals everything, and checks the recorded history
// and the end state with package jepsen/check. See DESIGN.md.
package jepsen
