package overlay

// Test fixtures: a cluster of nodes, each a named network namespace whose
// eth0 is a veth port of a bridge in a hub namespace (the underlay), with
// an interface "job0" holding an address of the node's subnet (a
// stand-in for a job). Nothing is created in the test process's own
// namespace, so parallel runs and other tests on the machine never see
// these interfaces, and deleting the namespaces removes all of them.

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// testNS is a named network namespace that lives as long as its test.
type testNS struct {
	name string
	h    netns.NsHandle
	nl   *netlink.Handle
}

func (n *testNS) path() string { return "/run/netns/" + n.name }

// newNS makes a namespace named prefix+suffix with lo up.
func newNS(t *testing.T, prefix, suffix string) *testNS {
	t.Helper()
	n := &testNS{name: prefix + suffix}
	type result struct {
		h   netns.NsHandle
		err error
	}
	done := make(chan result, 1)
	go func() {
		// NewNamed moves the calling thread into the new namespace. The
		// thread stays locked and ends with this goroutine, so it never
		// runs anything else.
		runtime.LockOSThread()
		h, err := netns.NewNamed(n.name)
		done <- result{h, err}
	}()
	r := <-done
	if r.err != nil {
		t.Fatalf("creating network namespace %s: %v", n.name, r.err)
	}
	n.h = r.h
	t.Cleanup(func() {
		if n.nl != nil {
			n.nl.Close()
		}
		n.h.Close()
		if err := netns.DeleteNamed(n.name); err != nil {
			t.Errorf("deleting network namespace %s: %v", n.name, err)
		}
	})
	nl, err := netlink.NewHandleAt(n.h, unix.NETLINK_ROUTE)
	if err != nil {
		t.Fatalf("netlink in %s: %v", n.name, err)
	}
	n.nl = nl
	lo, err := nl.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	if err := nl.LinkSetUp(lo); err != nil {
		t.Fatal(err)
	}
	return n
}

// do runs fn on a thread in the namespace. Sockets keep the namespace
// they were created in, so a listener or connection made by fn can be
// used from any goroutine afterwards.
func (n *testNS) do(fn func() error) error {
	done := make(chan error, 1)
	go func() {
		// Never unlocked: the thread, now in another namespace, ends
		// with this goroutine.
		runtime.LockOSThread()
		if err := netns.Set(n.h); err != nil {
			done <- err
			return
		}
		done <- fn()
	}()
	return <-done
}

// node is one member of a test cluster.
type node struct {
	*testNS
	Node
	job netip.Addr // the address on job0, in the node's subnet
}

// newCluster makes n nodes joined by a bridge, with underlay MTU mtu.
// Node i is "node<i>" with underlay 198.18.0.<i+1> (fd00:198:18::<i+1>
// with v6) and subnet 10.240.<i+1>.0/24, and job0 holds 10.240.<i+1>.5.
func newCluster(t *testing.T, n, mtu int, v6 bool) []*node {
	t.Helper()
	var rnd [4]byte
	rand.Read(rnd[:])
	// "povt" + 8 hex + a suffix of at most 2: unique per run, and short
	// enough for an interface name should one ever be needed.
	prefix := "povt" + hex.EncodeToString(rnd[:])
	hub := newNS(t, prefix, "h")
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "underlay", MTU: mtu}}
	if err := hub.nl.LinkAdd(br); err != nil {
		t.Fatalf("bridge in %s: %v", hub.name, err)
	}
	if err := hub.nl.LinkSetUp(br); err != nil {
		t.Fatal(err)
	}
	nodes := make([]*node, n)
	for i := range nodes {
		ns := newNS(t, prefix, fmt.Sprint(i))
		nd := &node{
			testNS: ns,
			Node: Node{
				Name:     fmt.Sprintf("node%d", i),
				Underlay: netip.AddrFrom4([4]byte{198, 18, 0, byte(i + 1)}),
				Subnet:   netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 240, byte(i + 1), 0}), 24),
			},
			job: netip.AddrFrom4([4]byte{10, 240, byte(i + 1), 5}),
		}
		bits := 24
		if v6 {
			nd.Underlay = netip.MustParseAddr(fmt.Sprintf("fd00:198:18::%d", i+1))
			bits = 64
		}
		nodes[i] = nd
		// Created in the hub with its peer straight in the node's
		// namespace: the pair never exists anywhere else.
		port := &netlink.Veth{
			LinkAttrs:     netlink.LinkAttrs{Name: fmt.Sprintf("p%d", i), MTU: mtu, MasterIndex: br.Index},
			PeerName:      "eth0",
			PeerMTU:       uint32(mtu),
			PeerNamespace: netlink.NsFd(int(ns.h)),
		}
		if err := hub.nl.LinkAdd(port); err != nil {
			t.Fatalf("veth for %s: %v", nd.Name, err)
		}
		if err := hub.nl.LinkSetUp(port); err != nil {
			t.Fatal(err)
		}
		eth0, err := ns.nl.LinkByName("eth0")
		if err != nil {
			t.Fatal(err)
		}
		addAddr(t, ns, eth0, netip.PrefixFrom(nd.Underlay, bits))
		if err := ns.nl.LinkSetUp(eth0); err != nil {
			t.Fatal(err)
		}
		// A job's address on an interface of its own. A veth pair with
		// both ends here stands in for a dummy interface, which not
		// every kernel has.
		job := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "job0"}, PeerName: "job0p"}
		if err := ns.nl.LinkAdd(job); err != nil {
			t.Fatalf("job0 in %s: %v", ns.name, err)
		}
		addAddr(t, ns, job, netip.PrefixFrom(nd.job, 32))
		for _, name := range []string{"job0", "job0p"} {
			l, err := ns.nl.LinkByName(name)
			if err != nil {
				t.Fatal(err)
			}
			if err := ns.nl.LinkSetUp(l); err != nil {
				t.Fatal(err)
			}
		}
	}
	return nodes
}

func addAddr(t *testing.T, ns *testNS, link netlink.Link, p netip.Prefix) {
	t.Helper()
	a := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}}
	if p.Addr().Is6() {
		// Usable at once: duplicate address detection would make the
		// address tentative for a while.
		a.Flags = unix.IFA_F_NODAD
	}
	if err := ns.nl.AddrAdd(link, a); err != nil {
		t.Fatalf("adding %s in %s: %v", p, ns.name, err)
	}
}

// newOverlay runs New for nd with cfg (Self and NetNS filled in) and
// closes the overlay when the test ends.
func newOverlay(t *testing.T, nd *node, cfg Config) *Overlay {
	t.Helper()
	cfg.Self = nd.Node
	cfg.NetNS = nd.path()
	cfg.Log = testLogger(t)
	o, err := New(cfg)
	if err != nil {
		t.Fatalf("New for %s: %v", nd.Name, err)
	}
	t.Cleanup(func() {
		if err := o.Close(); err != nil {
			t.Errorf("Close for %s: %v", nd.Name, err)
		}
	})
	return o
}

// state is the overlay's kernel state in ns, one sorted line per route,
// neighbour and FDB entry on the device, or nil when there is no device.
func state(t *testing.T, ns *testNS) []string {
	t.Helper()
	link, err := ns.nl.LinkByName(DefaultDevice)
	if errors.As(err, new(netlink.LinkNotFoundError)) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	idx := link.Attrs().Index
	var out []string
	routes, err := ns.nl.RouteListFiltered(netlink.FAMILY_V4,
		&netlink.Route{LinkIndex: idx, Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_OIF|netlink.RT_FILTER_TABLE)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range routes {
		s := fmt.Sprintf("route %v via %v src %v", r.Dst, r.Gw, r.Src)
		if r.Flags&int(netlink.FLAG_ONLINK) != 0 {
			s += " onlink"
		}
		out = append(out, s)
	}
	neighs, err := ns.nl.NeighList(idx, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range neighs {
		out = append(out, fmt.Sprintf("neigh %v %v %s", n.IP, n.HardwareAddr, neighState(n.State)))
	}
	fdb, err := ns.nl.NeighList(idx, unix.AF_BRIDGE)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range fdb {
		out = append(out, fmt.Sprintf("fdb %v dst %v %s", n.HardwareAddr, n.IP, neighState(n.State)))
	}
	slices.Sort(out)
	return out
}

func neighState(s int) string {
	if s == netlink.NUD_PERMANENT {
		return "permanent"
	}
	return fmt.Sprintf("state=%#x", s)
}

// wantState is the state a node should have with peers installed.
func wantState(self *node, peers ...*node) []string {
	var out []string
	for _, p := range peers {
		vtep := p.Subnet.Addr()
		mac := VTEPMAC(p.Subnet)
		out = append(out,
			fmt.Sprintf("route %v via %v src %v onlink", p.Subnet, vtep, self.Subnet.Addr()),
			fmt.Sprintf("neigh %v %v permanent", vtep, mac),
			fmt.Sprintf("fdb %v dst %v permanent", mac, p.Underlay),
		)
	}
	slices.Sort(out)
	return out
}

// echoServer listens on addr:0 in ns and echoes every connection back;
// peers receives the remote address of each connection.
func echoServer(t *testing.T, ns *testNS, addr netip.Addr) (netip.AddrPort, <-chan netip.Addr) {
	t.Helper()
	var ln net.Listener
	if err := ns.do(func() (err error) {
		ln, err = net.Listen("tcp4", netip.AddrPortFrom(addr, 0).String())
		return err
	}); err != nil {
		t.Fatalf("listening on %s in %s: %v", addr, ns.name, err)
	}
	peers := make(chan netip.Addr, 100)
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			peers <- c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap()
			wg.Go(func() {
				defer c.Close()
				io.Copy(c, c)
			})
		}
	})
	return ln.Addr().(*net.TCPAddr).AddrPort(), peers
}

// dialOnce connects from ns (from local, unless invalid) to to.
func dialOnce(ns *testNS, local netip.Addr, to netip.AddrPort, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	if local.IsValid() {
		d.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(local, 0))
	}
	var c net.Conn
	err := ns.do(func() (err error) {
		c, err = d.Dial("tcp4", to.String())
		return err
	})
	return c, err
}

// dial is dialOnce retried until deadline: the first packets over a
// fresh bridge may wait for the underlay's ARP.
func dial(ns *testNS, local netip.Addr, to netip.AddrPort, deadline time.Time) (net.Conn, error) {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		c, err := dialOnce(ns, local, to, 2*time.Second)
		if err == nil || time.Now().After(deadline) {
			return c, err
		}
		<-tick.C
	}
}

// echo sends payload over c and checks it comes back whole.
func echo(c net.Conn, payload []byte) error {
	c.SetDeadline(time.Now().Add(20 * time.Second))
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(payload)
		errc <- err
	}()
	got := make([]byte, len(payload))
	if _, err := io.ReadFull(c, got); err != nil {
		return fmt.Errorf("reading the echo: %w", err)
	}
	if err := <-errc; err != nil {
		return fmt.Errorf("writing: %w", err)
	}
	if string(got) != string(payload) {
		return errors.New("echo differs from what was sent")
	}
	return nil
}

// testLogger sends the overlay's log to t.Log.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}
