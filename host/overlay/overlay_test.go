package overlay

import (
	"bytes"
	"crypto/rand"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func TestVTEPMAC(t *testing.T) {
	a := VTEPMAC(netip.MustParsePrefix("10.240.3.0/24"))
	if want := (net.HardwareAddr{0x0e, 0x70, 10, 240, 3, 0}); !bytes.Equal(a, want) {
		t.Errorf("VTEPMAC(10.240.3.0/24) = %v, want %v", a, want)
	}
	if a[0]&2 == 0 || a[0]&1 != 0 {
		t.Errorf("%v is not a locally administered unicast MAC", a)
	}
	// The host bits of a prefix do not matter; the network does.
	if b := VTEPMAC(netip.MustParsePrefix("10.240.3.77/24")); !bytes.Equal(a, b) {
		t.Errorf("VTEPMAC ignores nothing: %v vs %v", a, b)
	}
	if b := VTEPMAC(netip.MustParsePrefix("10.240.4.0/24")); bytes.Equal(a, b) {
		t.Errorf("two subnets share MAC %v", a)
	}
	v6 := VTEPMAC(netip.MustParsePrefix("fd00::/64"))
	if len(v6) != 6 || v6[0] != 0x0e || !bytes.Equal(v6, VTEPMAC(netip.MustParsePrefix("fd00::/64"))) {
		t.Errorf("VTEPMAC(fd00::/64) = %v, not a stable pier MAC", v6)
	}
}

// TestOverlay runs three nodes through their life: lazy creation, a full
// mesh, traffic between their subnets, idempotence, repair of drift, a
// node leaving, an agent restart and Close.
func TestOverlay(t *testing.T) {
	// An underlay MTU other than the usual 1500 shows that the overlay's
	// is derived from it.
	nodes := newCluster(t, 3, 1400, false)
	n0, n1, n2 := nodes[0], nodes[1], nodes[2]
	ovs := make([]*Overlay, len(nodes))
	for i, nd := range nodes {
		ovs[i] = newOverlay(t, nd, Config{})
		if got := ovs[i].MTU(); got != 1350 {
			t.Errorf("%s: MTU() = %d, want 1350 (underlay 1400 - 50)", nd.Name, got)
		}
	}
	all := []Node{n0.Node, n1.Node, n2.Node}

	// Alone, or with a twin sharing its underlay address (another pier in
	// the same namespace), a node gets no device at all.
	twin := Node{Name: "twin", Underlay: n0.Underlay, Subnet: netip.MustParsePrefix("10.240.99.0/24")}
	if err := ovs[0].Sync([]Node{n0.Node, twin}); err != nil {
		t.Fatal(err)
	}
	if _, err := n0.nl.LinkByName(DefaultDevice); !errors.As(err, new(netlink.LinkNotFoundError)) {
		t.Fatalf("a node without remote peers has device %s (err %v)", DefaultDevice, err)
	}

	for i, o := range ovs {
		peers := all
		if i == 0 {
			peers = append(slices.Clone(all), twin)
		}
		if err := o.Sync(peers); err != nil {
			t.Fatalf("Sync on %s: %v", nodes[i].Name, err)
		}
	}
	for i, nd := range nodes {
		var peers []*node
		for j, p := range nodes {
			if j != i {
				peers = append(peers, p)
			}
		}
		if got, want := state(t, nd.testNS), wantState(nd, peers...); !slices.Equal(got, want) {
			t.Errorf("%s after Sync:\n got %q\nwant %q", nd.Name, got, want)
		}
		link, err := nd.nl.LinkByName(DefaultDevice)
		if err != nil {
			t.Fatal(err)
		}
		vx := link.(*netlink.Vxlan)
		if vx.MTU != 1350 || vx.VxlanId != DefaultVNI || vx.Port != DefaultPort || vx.Learning ||
			!vx.SrcAddr.Equal(nd.Underlay.AsSlice()) || !bytes.Equal(vx.HardwareAddr, VTEPMAC(nd.Subnet)) ||
			vx.Flags&net.FlagUp == 0 {
			t.Errorf("%s: device %+v", nd.Name, vx)
		}
		addrs, err := nd.nl.AddrList(link, netlink.FAMILY_V4)
		if err != nil {
			t.Fatal(err)
		}
		if len(addrs) != 1 || addrs[0].IPNet.String() != nd.Subnet.Addr().String()+"/32" {
			t.Errorf("%s: device addresses %v, want only %s/32", nd.Name, addrs, nd.Subnet.Addr())
		}
	}
	// The twin's subnet is not routed on n0 (it is local there).
	if r, err := n0.nl.RouteGet(net.ParseIP("10.240.99.1")); err == nil {
		t.Errorf("n0 routes the twin's subnet: %v", r)
	}

	// Real traffic between job addresses over the overlay, in every
	// direction, with a payload of many full-size segments.
	payload := make([]byte, 1<<20)
	rand.Read(payload)
	servers := make([]netip.AddrPort, len(nodes))
	accepted := make([]<-chan netip.Addr, len(nodes))
	for i, nd := range nodes {
		servers[i], accepted[i] = echoServer(t, nd.testNS, nd.job)
	}
	deadline := time.Now().Add(15 * time.Second)
	for i, from := range nodes {
		for j := range nodes {
			if i == j {
				continue
			}
			c, err := dial(from.testNS, from.job, servers[j], deadline)
			if err != nil {
				t.Fatalf("%s -> %s: %v", from.Name, nodes[j].Name, err)
			}
			if err := echo(c, payload); err != nil {
				t.Errorf("%s -> %s: %v", from.Name, nodes[j].Name, err)
			}
			c.Close()
			if got := <-accepted[j]; got != from.job {
				t.Errorf("%s saw a connection from %s, want %s (no NAT on the overlay)", nodes[j].Name, got, from.job)
			}
		}
	}
	// Without a chosen source the host's own traffic leaves from its VTEP
	// address (the routes' src), and the reply finds its way back.
	c, err := dial(n0.testNS, netip.Addr{}, servers[1], deadline)
	if err != nil {
		t.Fatalf("n0 -> n1 without a source address: %v", err)
	}
	if err := echo(c, []byte("hello")); err != nil {
		t.Error(err)
	}
	c.Close()
	if got := <-accepted[1]; got != n0.Subnet.Addr() {
		t.Errorf("n1 saw the host's connection from %s, want n0's VTEP %s", got, n0.Subnet.Addr())
	}

	// Idempotent: the same list again touches nothing, not even the
	// device.
	before := state(t, n0.testNS)
	link0, _ := n0.nl.LinkByName(DefaultDevice)
	if err := ovs[0].Sync(all); err != nil {
		t.Fatal(err)
	}
	if got := state(t, n0.testNS); !slices.Equal(got, before) {
		t.Errorf("second Sync changed the state:\n got %q\nwant %q", got, before)
	}
	if l, _ := n0.nl.LinkByName(DefaultDevice); l.Attrs().Index != link0.Attrs().Index {
		t.Error("second Sync recreated the device")
	}

	// Drift (an operator's hand, a crash half-way) is repaired: a missing
	// route and neighbour, a wrong FDB destination, stray entries.
	idx := link0.Attrs().Index
	mustOK(t, n0.nl.RouteDel(&netlink.Route{LinkIndex: idx, Dst: ipNet(n1.Subnet)}))
	mustOK(t, n0.nl.NeighDel(&netlink.Neigh{LinkIndex: idx, Family: netlink.FAMILY_V4, IP: n1.Subnet.Addr().AsSlice()}))
	mustOK(t, n0.nl.NeighSet(&netlink.Neigh{LinkIndex: idx, Family: unix.AF_BRIDGE, Flags: netlink.NTF_SELF,
		State: netlink.NUD_PERMANENT, IP: net.ParseIP("198.18.0.200"), HardwareAddr: VTEPMAC(n2.Subnet)}))
	stray := netip.MustParsePrefix("10.240.50.0/24")
	mustOK(t, n0.nl.NeighSet(&netlink.Neigh{LinkIndex: idx, Family: netlink.FAMILY_V4,
		State: netlink.NUD_PERMANENT, IP: stray.Addr().AsSlice(), HardwareAddr: VTEPMAC(stray)}))
	mustOK(t, n0.nl.RouteAdd(&netlink.Route{LinkIndex: idx, Dst: ipNet(stray), Gw: stray.Addr().AsSlice(),
		Flags: int(netlink.FLAG_ONLINK)}))
	mustOK(t, n0.nl.NeighAppend(&netlink.Neigh{LinkIndex: idx, Family: unix.AF_BRIDGE, Flags: netlink.NTF_SELF,
		State: netlink.NUD_PERMANENT, IP: net.ParseIP("198.18.0.201"), HardwareAddr: VTEPMAC(stray)}))
	if got := state(t, n0.testNS); slices.Equal(got, before) {
		t.Fatal("the drift did not change the state")
	}
	// And the device itself: down, another MTU, a stray address. (Down
	// takes the routes with it; the MTU change must come first.)
	mustOK(t, n0.nl.LinkSetMTU(link0, 1000))
	addAddr(t, n0.testNS, link0, stray)
	mustOK(t, n0.nl.LinkSetDown(link0))
	if err := ovs[0].Sync(all); err != nil {
		t.Fatal(err)
	}
	if got := state(t, n0.testNS); !slices.Equal(got, before) {
		t.Errorf("Sync did not repair the drift:\n got %q\nwant %q", got, before)
	}
	l, err := n0.nl.LinkByName(DefaultDevice)
	if err != nil {
		t.Fatal(err)
	}
	addrs, err := n0.nl.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	if l.Attrs().Index != idx || l.Attrs().MTU != 1350 || l.Attrs().Flags&net.FlagUp == 0 ||
		len(addrs) != 1 || addrs[0].IPNet.String() != "10.240.1.0/32" {
		t.Errorf("device not repaired: index %d (was %d), MTU %d, flags %v, addresses %v",
			l.Attrs().Index, idx, l.Attrs().MTU, l.Attrs().Flags, addrs)
	}

	// n2 leaves: the others drop every trace of it, and still reach each
	// other.
	for _, o := range ovs[:2] {
		if err := o.Sync(all[:2]); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := state(t, n0.testNS), wantState(n0, n1); !slices.Equal(got, want) {
		t.Errorf("n0 after n2 left:\n got %q\nwant %q", got, want)
	}
	if got, want := state(t, n1.testNS), wantState(n1, n0); !slices.Equal(got, want) {
		t.Errorf("n1 after n2 left:\n got %q\nwant %q", got, want)
	}
	if _, err := dialOnce(n0.testNS, n0.job, servers[2], 5*time.Second); !errors.Is(err, syscall.ENETUNREACH) {
		t.Errorf("n0 -> n2 after n2 left: %v, want network unreachable", err)
	}
	c, err = dial(n0.testNS, n0.job, servers[1], time.Now().Add(10*time.Second))
	if err != nil {
		t.Fatalf("n0 -> n1 after n2 left: %v", err)
	}
	<-accepted[1]

	// An agent restart: a new Overlay adopts the device as it is, and the
	// open connection does not notice.
	restarted, err := New(Config{Self: n0.Node, NetNS: n0.path(), Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { restarted.Close() })
	if err := restarted.Sync(all[:2]); err != nil {
		t.Fatal(err)
	}
	if l, _ := n0.nl.LinkByName(DefaultDevice); l.Attrs().Index != idx {
		t.Error("a restarted overlay recreated a device that was fine")
	}
	if err := echo(c, payload); err != nil {
		t.Errorf("connection across the restart: %v", err)
	}
	c.Close()

	// Another VNI (a changed configuration) replaces the device.
	changed, err := New(Config{Self: n0.Node, NetNS: n0.path(), VNI: 7, Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { changed.Close() })
	if err := changed.Sync(all[:2]); err != nil {
		t.Fatal(err)
	}
	l, err = n0.nl.LinkByName(DefaultDevice)
	if err != nil {
		t.Fatal(err)
	}
	if l.(*netlink.Vxlan).VxlanId != 7 || l.Attrs().Index == idx {
		t.Errorf("after a VNI change: VNI %d, index %d (was %d)", l.(*netlink.Vxlan).VxlanId, l.Attrs().Index, idx)
	}
	if got, want := state(t, n0.testNS), wantState(n0, n1); !slices.Equal(got, want) {
		t.Errorf("n0 after the device was replaced:\n got %q\nwant %q", got, want)
	}

	// Close removes the device and its routes; a second Close, or one of
	// another Overlay of the same device, is harmless.
	if err := changed.Close(); err != nil {
		t.Fatal(err)
	}
	if err := restarted.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := n0.nl.LinkByName(DefaultDevice); !errors.As(err, new(netlink.LinkNotFoundError)) {
		t.Errorf("device still there after Close (err %v)", err)
	}
	if r, err := n0.nl.RouteGet(n1.job.AsSlice()); err == nil {
		t.Errorf("route to n1 still there after Close: %v", r)
	}
	if err := changed.Sync(all); err == nil {
		t.Error("Sync after Close succeeded")
	}
}

// TestIPv6Underlay: the overlay carries IPv4 between nodes whose own
// addresses are IPv6, with IPv6's larger overhead taken off the MTU.
func TestIPv6Underlay(t *testing.T) {
	nodes := newCluster(t, 2, 1500, true)
	n0, n1 := nodes[0], nodes[1]
	o0, o1 := newOverlay(t, n0, Config{}), newOverlay(t, n1, Config{})
	if o0.MTU() != 1430 {
		t.Errorf("MTU() = %d, want 1430 (1500 - 70 over IPv6)", o0.MTU())
	}
	for _, o := range []*Overlay{o0, o1} {
		if err := o.Sync([]Node{n0.Node, n1.Node}); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := state(t, n0.testNS), wantState(n0, n1); !slices.Equal(got, want) {
		t.Errorf("state:\n got %q\nwant %q", got, want)
	}
	srv, accepted := echoServer(t, n1.testNS, n1.job)
	c, err := dial(n0.testNS, n0.job, srv, time.Now().Add(15*time.Second))
	if err != nil {
		t.Fatalf("n0 -> n1: %v", err)
	}
	defer c.Close()
	payload := make([]byte, 1<<20)
	rand.Read(payload)
	if err := echo(c, payload); err != nil {
		t.Error(err)
	}
	if got := <-accepted; got != n0.job {
		t.Errorf("n1 saw a connection from %s, want %s", got, n0.job)
	}
}

// TestSyncInvalidPeers: bad peer records are reported, and do not stop the
// good ones from being installed.
func TestSyncInvalidPeers(t *testing.T) {
	nodes := newCluster(t, 2, 1500, false)
	n0, n1 := nodes[0], nodes[1]
	o := newOverlay(t, n0, Config{})
	if o.MTU() != 1450 {
		t.Errorf("MTU() = %d, want 1450", o.MTU())
	}
	bad := []Node{
		{Name: "a-overlaps-self", Underlay: netip.MustParseAddr("198.18.0.50"), Subnet: netip.MustParsePrefix("10.240.1.128/25")},
		{Name: "b-no-underlay", Subnet: netip.MustParsePrefix("10.240.60.0/24")},
		{Name: "c-v6-subnet", Underlay: netip.MustParseAddr("198.18.0.51"), Subnet: netip.MustParsePrefix("fd00::/64")},
		{Name: "z-overlaps-node1", Underlay: netip.MustParseAddr("198.18.0.52"), Subnet: netip.MustParsePrefix("10.240.2.0/23")},
		{Name: "d-v6-underlay", Underlay: netip.MustParseAddr("fd00::1"), Subnet: netip.MustParsePrefix("10.240.61.0/24")},
	}
	err := o.Sync(append([]Node{n0.Node, n1.Node}, bad...))
	if err == nil {
		t.Fatal("Sync accepted invalid peers")
	}
	for _, b := range bad {
		if !strings.Contains(err.Error(), b.Name) {
			t.Errorf("the error does not mention %s: %v", b.Name, err)
		}
	}
	if got, want := state(t, n0.testNS), wantState(n0, n1); !slices.Equal(got, want) {
		t.Errorf("state:\n got %q\nwant %q", got, want)
	}
}

// TestNewErrors: New refuses what cannot work, before touching anything.
func TestNewErrors(t *testing.T) {
	nodes := newCluster(t, 1, 1500, false)
	n0 := nodes[0]
	for name, cfg := range map[string]Config{
		"underlay not here": {Self: Node{Name: "x", Underlay: netip.MustParseAddr("198.18.9.9"), Subnet: n0.Subnet}},
		"MTU too large":     {Self: n0.Node, MTU: 1451},
		"v6 subnet":         {Self: Node{Name: "x", Underlay: n0.Underlay, Subnet: netip.MustParsePrefix("fd00::/64")}},
		"VNI too large":     {Self: n0.Node, VNI: 1 << 24},
		"device name long":  {Self: n0.Node, Device: "pier-overlay-vxlan"},
	} {
		cfg.NetNS = n0.path()
		if o, err := New(cfg); err == nil {
			o.Close()
			t.Errorf("%s: New succeeded", name)
		}
	}
	// A smaller MTU than the maximum is the operator's choice.
	o := newOverlay(t, n0, Config{MTU: 1400})
	if o.MTU() != 1400 {
		t.Errorf("MTU() = %d, want 1400", o.MTU())
	}
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func mustOK(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
