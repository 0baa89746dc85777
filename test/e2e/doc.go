// Package e2e is pier's end-to-end suite under real faults: it builds the
// pier binary, starts a cluster of three servers, three host agents and two
// routers on one machine, each in its own network namespace with its own
// address on a private bridge (10.213.0.0/24), with real embedded etcd and
// real runc containers, and then breaks it the ways machines break: a host
// killed with every process on it, a host cut off by iptables, the etcd
// leader and the scheduler leader killed, a power cut of the whole cluster,
// a rolling restart of every process, the whole cluster lost and restored
// from a backup onto fresh nodes (a database's rows included), and a
// rolling upgrade of pier itself (each node has its own copy of the
// binary, which an upgrade replaces). A bounded load generator drives
// HTTP through the routers during each scenario and counts failed requests;
// each scenario logs its failures and recovery time and appends them as a
// JSON line to results/results.jsonl (or $PIER_E2E_RESULTS), from which
// docs/benchmarks.md is written.
//
// The suite needs root (namespaces, iptables, runc). It shares one cluster
// between scenarios, restoring it between them, and tears everything down
// on exit, on Ctrl-C, and, for a run that was killed, at the start of the
// next run: every name it creates starts with "pe2e" and every file lives
// under /tmp/pier-e2e. $PIER_E2E_PIER runs it against a pier binary built
// elsewhere instead of building one; $PIER_E2E_KEEP_LOGS keeps the
// daemons' logs of a passing run too (a failing run always keeps them).
//
//	go test -count=1 ./test/e2e/ -run TestHostKill -v
package e2e
