// Package overlay benchmarks the cluster's VXLAN overlay (host/overlay):
// iperf3 throughput between two network namespaces joined by a veth pair,
// once over the plain underlay and once over the overlay between the same
// namespaces, and the ratio of the two (issue 17's target: at least 0.8).
//
// It is a Go benchmark, so the normal test run never starts it:
//
//	go test -run '^$' -bench . ./bench/overlay/
//
// `make bench` runs it with the others. It needs root and iperf3
// (scripts/setup installs it with SETUP_BENCH=1, as `make bench` does).
package overlay
