package overlay

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/pierpaas/pier/host/overlay"
)

const (
	// Runs alternate underlay and overlay, so that a burst of load from
	// something else on the machine hits both alike; both the medians and
	// the best runs (the capacity when the machine was least busy) are
	// compared.
	rounds  = 5
	seconds = 2 // length of one iperf3 run
	port    = 5201
)

// benchNode is one side: a namespace with eth0 on the underlay and job0
// holding an address of its overlay subnet.
type benchNode struct {
	ns   string
	node overlay.Node
	job  netip.Addr
}

func (n benchNode) path() string { return "/run/netns/" + n.ns }

// BenchmarkIperf3 compares iperf3 throughput over the overlay with the
// underlay's, between the same two namespaces.
func BenchmarkIperf3(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Fatal("needs root (network namespaces)")
	}
	iperf, err := exec.LookPath("iperf3")
	if err != nil {
		b.Fatal("iperf3 not found: run SETUP_BENCH=1 scripts/setup (make bench does)")
	}
	a, z := setup(b)

	var under, over []float64
	for b.Loop() {
		under, over = under[:0], over[:0]
		for range rounds {
			under = append(under, iperf3(b, iperf, a, z, a.node.Underlay, z.node.Underlay))
			over = append(over, iperf3(b, iperf, a, z, a.job, z.job))
		}
	}
	u, o := median(under), median(over)
	ub, ob := slices.Max(under), slices.Max(over)
	b.ReportMetric(u/1e9, "underlay-Gbit/s")
	b.ReportMetric(o/1e9, "overlay-Gbit/s")
	b.ReportMetric(o/u, "ratio")
	b.ReportMetric(ob/ub, "best-ratio")
	b.Logf("iperf3 %ds x %d; medians: underlay %.2f Gbit/s, overlay %.2f Gbit/s, ratio %.2f; best runs: %.2f, %.2f Gbit/s, ratio %.2f (target >= 0.8)",
		seconds, rounds, u/1e9, o/1e9, o/u, ub/1e9, ob/1e9, ob/ub)
	b.Logf("underlay runs %v Gbit/s; overlay runs %v Gbit/s", gbits(under), gbits(over))
}

func gbits(xs []float64) []string {
	var out []string
	for _, x := range xs {
		out = append(out, fmt.Sprintf("%.2f", x/1e9))
	}
	return out
}

// setup makes two namespaces joined by a veth pair and an overlay between
// them; everything goes when the benchmark ends.
func setup(b *testing.B) (benchNode, benchNode) {
	var rnd [4]byte
	rand.Read(rnd[:])
	prefix := "povt" + hex.EncodeToString(rnd[:])
	nodes := [2]benchNode{}
	handles := [2]netns.NsHandle{}
	for i := range nodes {
		nodes[i] = benchNode{
			ns: fmt.Sprintf("%sb%d", prefix, i),
			node: overlay.Node{
				Name:     fmt.Sprintf("node%d", i),
				Underlay: netip.AddrFrom4([4]byte{198, 18, 0, byte(i + 1)}),
				Subnet:   netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 240, byte(i + 1), 0}), 24),
			},
			job: netip.AddrFrom4([4]byte{10, 240, byte(i + 1), 5}),
		}
		handles[i] = newNS(b, nodes[i].ns)
	}
	nl := [2]*netlink.Handle{}
	for i := range nodes {
		h, err := netlink.NewHandleAt(handles[i], unix.NETLINK_ROUTE)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(h.Close)
		nl[i] = h
	}
	// The underlay: one veth pair, eth0 in each namespace.
	if err := nl[0].LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "eth0"},
		PeerName: "eth0", PeerNamespace: netlink.NsFd(int(handles[1]))}); err != nil {
		b.Fatal(err)
	}
	for i, n := range nodes {
		// job0 stands in for a job's interface: a veth pair with both
		// ends here, since not every kernel has dummy interfaces.
		if err := nl[i].LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "job0"}, PeerName: "job0p"}); err != nil {
			b.Fatal(err)
		}
		addr(b, nl[i], "eth0", netip.PrefixFrom(n.node.Underlay, 24))
		addr(b, nl[i], "job0", netip.PrefixFrom(n.job, 32))
		for _, name := range []string{"lo", "eth0", "job0", "job0p"} {
			l, err := nl[i].LinkByName(name)
			if err != nil {
				b.Fatal(err)
			}
			if err := nl[i].LinkSetUp(l); err != nil {
				b.Fatal(err)
			}
		}
	}
	for _, n := range nodes {
		o, err := overlay.New(overlay.Config{Self: n.node, NetNS: n.path()})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { o.Close() })
		if err := o.Sync([]overlay.Node{nodes[0].node, nodes[1].node}); err != nil {
			b.Fatal(err)
		}
	}
	return nodes[0], nodes[1]
}

// newNS makes a named network namespace, deleted when b ends.
func newNS(b *testing.B, name string) netns.NsHandle {
	done := make(chan error, 1)
	var h netns.NsHandle
	go func() {
		// NewNamed moves this thread into the new namespace: the thread
		// stays locked and ends with the goroutine.
		runtime.LockOSThread()
		var err error
		h, err = netns.NewNamed(name)
		done <- err
	}()
	if err := <-done; err != nil {
		b.Fatalf("network namespace %s: %v", name, err)
	}
	b.Cleanup(func() {
		h.Close()
		if err := netns.DeleteNamed(name); err != nil {
			b.Errorf("deleting network namespace %s: %v", name, err)
		}
	})
	return h
}

func addr(b *testing.B, h *netlink.Handle, dev string, p netip.Prefix) {
	l, err := h.LinkByName(dev)
	if err != nil {
		b.Fatal(err)
	}
	if err := h.AddrAdd(l, &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), 32)}}); err != nil {
		b.Fatal(err)
	}
}

// iperf3 runs a server on to in z and a client from from in a, and
// returns the received bits per second.
func iperf3(b *testing.B, bin string, a, z benchNode, from, to netip.Addr) float64 {
	srv := exec.Command("nsenter", "--net="+z.path(), "--", bin, "-s", "-1", "-B", to.String(), "-p", fmt.Sprint(port))
	var srvOut strings.Builder
	srv.Stdout, srv.Stderr = &srvOut, &srvOut
	if err := srv.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		srv.Process.Kill()
		srv.Wait()
	}()
	if err := waitListening(srv.Process.Pid, port, time.Now().Add(10*time.Second)); err != nil {
		b.Fatalf("iperf3 server on %s: %v\n%s", to, err, srvOut.String())
	}
	out, err := exec.Command("nsenter", "--net="+a.path(), "--", bin, "-c", to.String(), "-B", from.String(),
		"-p", fmt.Sprint(port), "-t", fmt.Sprint(seconds), "-J").Output()
	if err != nil {
		b.Fatalf("iperf3 %s -> %s: %v\n%s", from, to, err, out)
	}
	var res struct {
		End struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal(out, &res); err != nil || res.Error != "" || res.End.SumReceived.BitsPerSecond == 0 {
		b.Fatalf("iperf3 %s -> %s: %v %s\n%s", from, to, err, res.Error, out)
	}
	return res.End.SumReceived.BitsPerSecond
}

// waitListening polls the TCP table of pid's network namespace until
// something listens on port: a trial connection would be taken by
// iperf3 for a test.
func waitListening(pid, port int, deadline time.Time) error {
	want := fmt.Sprintf(":%04X", port)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		f, err := os.Open(fmt.Sprintf("/proc/%d/net/tcp", pid))
		if err == nil {
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				// sl local_address rem_address st ...; 0A is LISTEN.
				fs := strings.Fields(sc.Text())
				if len(fs) > 3 && strings.HasSuffix(fs[1], want) && fs[3] == "0A" {
					f.Close()
					return nil
				}
			}
			f.Close()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing listens on port %d", port)
		}
		<-tick.C
	}
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}
