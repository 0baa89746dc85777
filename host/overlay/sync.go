package overlay

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// remote is what Sync installs for one peer.
type remote struct {
	name     string
	subnet   netip.Prefix
	vtep     netip.Addr
	mac      net.HardwareAddr
	underlay netip.Addr
}

// Sync makes the kernel's overlay state match peers, the full list of the
// cluster's nodes (self may be among them): for every peer with another
// underlay address than self, a route to its subnet via its VTEP, a
// permanent neighbour entry for its VTEP and an FDB entry sending its VTEP
// MAC to its underlay address. Whatever else is on the device is removed.
//
// Peers sharing self's underlay address are skipped: they are pier
// instances in the same network namespace (tests), reachable without the
// overlay. Invalid peers (no underlay, a subnet overlapping self's or an
// earlier peer's) are skipped and reported in the returned error, while
// the valid ones are still applied: one bad record must not cut a host off
// from the rest of the cluster.
func (o *Overlay) Sync(peers []Node) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.nl == nil {
		return errors.New("overlay: closed")
	}
	want, errs := o.plan(peers)
	link, err := o.device(len(want) > 0)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	if link != nil {
		if err := o.syncEntries(link.Attrs().Index, want); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// plan validates peers and returns the remotes to install, by subnet.
func (o *Overlay) plan(peers []Node) (map[netip.Prefix]remote, []error) {
	// Sorted, so that which of two conflicting peers wins does not depend
	// on the order the caller happened to list them in.
	peers = slices.Clone(peers)
	slices.SortFunc(peers, func(a, b Node) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), a.Subnet.Addr().Compare(b.Subnet.Addr()))
	})
	want := make(map[netip.Prefix]remote, len(peers))
	var errs []error
	for _, p := range peers {
		underlay, subnet := p.Underlay.Unmap(), p.Subnet.Masked()
		if underlay == o.self.Underlay {
			continue
		}
		if !underlay.IsValid() || underlay.IsUnspecified() {
			errs = append(errs, fmt.Errorf("overlay: peer %q has no underlay address", p.Name))
			continue
		}
		if underlay.Is4() != o.self.Underlay.Is4() {
			errs = append(errs, fmt.Errorf("overlay: peer %q: underlay %s is not of the same IP version as ours (%s)", p.Name, underlay, o.self.Underlay))
			continue
		}
		if err := checkSubnet(subnet); err != nil {
			errs = append(errs, fmt.Errorf("overlay: peer %q: %w", p.Name, err))
			continue
		}
		if subnet.Overlaps(o.self.Subnet) {
			errs = append(errs, fmt.Errorf("overlay: peer %q: subnet %s overlaps ours (%s)", p.Name, subnet, o.self.Subnet))
			continue
		}
		conflict := ""
		for _, r := range want {
			if r.subnet.Overlaps(subnet) {
				conflict = r.name
				break
			}
		}
		if conflict != "" {
			errs = append(errs, fmt.Errorf("overlay: peer %q: subnet %s overlaps peer %q's", p.Name, subnet, conflict))
			continue
		}
		want[subnet] = remote{
			name:     p.Name,
			subnet:   subnet,
			vtep:     subnet.Addr(),
			mac:      VTEPMAC(subnet),
			underlay: underlay,
		}
	}
	return want, errs
}

// device returns the VXLAN device, set up as configured, creating it if
// need is true. With need false and no device it returns nil: a node
// without remote peers has no overlay device at all. A device with other
// settings (left by a run with another configuration) is recreated.
func (o *Overlay) device(need bool) (netlink.Link, error) {
	link, err := o.nl.LinkByName(o.dev)
	switch {
	case errors.As(err, new(netlink.LinkNotFoundError)):
		link = nil
	case err != nil:
		return nil, fmt.Errorf("overlay: %w", err)
	}
	if link != nil {
		vx, ok := link.(*netlink.Vxlan)
		if !ok {
			return nil, fmt.Errorf("overlay: %s exists and is a %s device, not vxlan", o.dev, link.Type())
		}
		if why := o.mismatch(vx); why != "" {
			o.log.Warn("overlay device has other settings: recreating it", "reason", why)
			if err := o.nl.LinkDel(link); err != nil {
				return nil, fmt.Errorf("overlay: deleting %s: %w", o.dev, err)
			}
			link = nil
		}
	}
	if link == nil {
		if !need {
			return nil, nil
		}
		vx := &netlink.Vxlan{
			LinkAttrs: netlink.LinkAttrs{
				Name:         o.dev,
				MTU:          o.mtu,
				HardwareAddr: VTEPMAC(o.self.Subnet),
			},
			VxlanId:      o.vni,
			VtepDevIndex: o.underlay,
			SrcAddr:      net.IP(o.self.Underlay.AsSlice()),
			Port:         o.port,
			Learning:     false,
		}
		if err := o.nl.LinkAdd(vx); err != nil {
			return nil, fmt.Errorf("overlay: creating %s: %w", o.dev, err)
		}
		if link, err = o.nl.LinkByName(o.dev); err != nil {
			return nil, fmt.Errorf("overlay: %w", err)
		}
		o.log.Info("overlay device created", "vni", o.vni, "port", o.port, "mtu", o.mtu, "local", o.self.Underlay)
	}
	if link.Attrs().MTU != o.mtu {
		if err := o.nl.LinkSetMTU(link, o.mtu); err != nil {
			return nil, fmt.Errorf("overlay: setting the MTU of %s: %w", o.dev, err)
		}
	}
	if err := o.syncAddr(link); err != nil {
		return nil, err
	}
	if link.Attrs().Flags&net.FlagUp == 0 {
		if err := o.nl.LinkSetUp(link); err != nil {
			return nil, fmt.Errorf("overlay: setting %s up: %w", o.dev, err)
		}
	}
	return link, nil
}

// mismatch says how an existing device differs from the one New would
// create, or "" if it does not in any way that needs a new device.
func (o *Overlay) mismatch(vx *netlink.Vxlan) string {
	switch {
	case vx.VxlanId != o.vni:
		return fmt.Sprintf("VNI %d, want %d", vx.VxlanId, o.vni)
	case vx.Port != o.port:
		return fmt.Sprintf("port %d, want %d", vx.Port, o.port)
	case !vx.SrcAddr.Equal(net.IP(o.self.Underlay.AsSlice())):
		return fmt.Sprintf("local address %v, want %s", vx.SrcAddr, o.self.Underlay)
	case vx.VtepDevIndex != o.underlay:
		return fmt.Sprintf("underlay interface %d, want %d", vx.VtepDevIndex, o.underlay)
	case vx.Learning:
		return "learning on"
	case vx.Group != nil && !vx.Group.IsUnspecified():
		return fmt.Sprintf("group %v", vx.Group)
	case vx.FlowBased:
		return "external (flow-based)"
	case !bytes.Equal(vx.HardwareAddr, VTEPMAC(o.self.Subnet)):
		return fmt.Sprintf("MAC %v, want %v", vx.HardwareAddr, VTEPMAC(o.self.Subnet))
	}
	return ""
}

// syncAddr leaves exactly the VTEP address (as a /32) on the device.
func (o *Overlay) syncAddr(link netlink.Link) error {
	addrs, err := retryDump(func() ([]netlink.Addr, error) { return o.nl.AddrList(link, netlink.FAMILY_V4) })
	if err != nil {
		return fmt.Errorf("overlay: listing addresses of %s: %w", o.dev, err)
	}
	have := false
	for _, a := range addrs {
		ones, _ := a.Mask.Size()
		if ip, _ := netip.AddrFromSlice(a.IP); ip.Unmap() == o.vtep && ones == 32 {
			have = true
			continue
		}
		if err := o.nl.AddrDel(link, &a); err != nil {
			return fmt.Errorf("overlay: removing %s from %s: %w", a.IPNet, o.dev, err)
		}
		o.log.Info("stale overlay address removed", "addr", a.IPNet)
	}
	if have {
		return nil
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: net.IP(o.vtep.AsSlice()), Mask: net.CIDRMask(32, 32)}}
	if err := o.nl.AddrAdd(link, addr); err != nil {
		return fmt.Errorf("overlay: adding %s to %s: %w", addr.IPNet, o.dev, err)
	}
	return nil
}

// syncEntries makes the routes, neighbour and FDB entries on the device
// (index idx) those of want. Stale entries go first, route before
// neighbour before FDB entry, so that no route ever points at a missing
// neighbour; new ones are added in the opposite order for the same reason.
func (o *Overlay) syncEntries(idx int, want map[netip.Prefix]remote) error {
	byVTEP := make(map[netip.Addr]remote, len(want))
	byMAC := make(map[string]remote, len(want))
	for _, r := range want {
		byVTEP[r.vtep] = r
		byMAC[string(r.mac)] = r
	}

	routes, err := retryDump(func() ([]netlink.Route, error) {
		return o.nl.RouteListFiltered(netlink.FAMILY_V4,
			&netlink.Route{LinkIndex: idx, Table: unix.RT_TABLE_MAIN},
			netlink.RT_FILTER_OIF|netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		return fmt.Errorf("overlay: listing routes: %w", err)
	}
	neighs, err := retryDump(func() ([]netlink.Neigh, error) { return o.nl.NeighList(idx, netlink.FAMILY_V4) })
	if err != nil {
		return fmt.Errorf("overlay: listing neighbours: %w", err)
	}
	fdb, err := retryDump(func() ([]netlink.Neigh, error) { return o.nl.NeighList(idx, unix.AF_BRIDGE) })
	if err != nil {
		return fmt.Errorf("overlay: listing FDB entries: %w", err)
	}

	// What is already right, by subnet.
	routeOK := map[netip.Prefix]bool{}
	neighOK := map[netip.Prefix]bool{}
	fdbOK := map[netip.Prefix]bool{}

	for _, rt := range routes {
		dst := prefixOf(rt.Dst)
		r, wanted := want[dst]
		if wanted && !routeOK[dst] && o.routeIs(rt, r) {
			routeOK[dst] = true
			continue
		}
		// Not wanted, a duplicate, or not quite the route we install
		// (another metric would survive a RouteReplace beside ours):
		// deleted, and added again below when wanted.
		if err := o.nl.RouteDel(&rt); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("overlay: deleting route to %v: %w", rt.Dst, err)
		}
		o.log.Info("overlay route removed", "dst", rt.Dst, "via", rt.Gw)
	}
	for _, n := range neighs {
		ip, _ := netip.AddrFromSlice(n.IP)
		r, wanted := byVTEP[ip.Unmap()]
		if wanted && bytes.Equal(n.HardwareAddr, r.mac) && n.State == netlink.NUD_PERMANENT {
			neighOK[r.subnet] = true
			continue
		}
		if wanted {
			continue // NeighSet below replaces it
		}
		del := netlink.Neigh{LinkIndex: idx, Family: netlink.FAMILY_V4, IP: n.IP}
		if err := o.nl.NeighDel(&del); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("overlay: deleting neighbour %v: %w", n.IP, err)
		}
		o.log.Info("overlay neighbour removed", "ip", n.IP, "mac", n.HardwareAddr.String())
	}
	for _, n := range fdb {
		if n.IP == nil {
			continue // a device address entry, not a VXLAN destination
		}
		ip, _ := netip.AddrFromSlice(n.IP)
		r, wanted := byMAC[string(n.HardwareAddr)]
		if wanted && ip.Unmap() == r.underlay && n.State&netlink.NUD_PERMANENT != 0 {
			fdbOK[r.subnet] = true
			continue
		}
		// Also an entry for a wanted MAC to a wrong destination: NeighSet
		// would replace it, but one MAC may have several destinations
		// and only an exact delete removes the right one.
		del := netlink.Neigh{LinkIndex: idx, Family: unix.AF_BRIDGE, Flags: netlink.NTF_SELF,
			State: n.State, IP: n.IP, HardwareAddr: n.HardwareAddr}
		if err := o.nl.NeighDel(&del); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("overlay: deleting FDB entry %v dst %v: %w", n.HardwareAddr, n.IP, err)
		}
		o.log.Info("overlay FDB entry removed", "mac", n.HardwareAddr.String(), "dst", n.IP)
	}

	// Deterministic order makes logs and failures reproducible.
	subnets := make([]netip.Prefix, 0, len(want))
	for s := range want {
		subnets = append(subnets, s)
	}
	slices.SortFunc(subnets, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	for _, s := range subnets {
		r := want[s]
		if !fdbOK[s] {
			if err := o.nl.NeighSet(&netlink.Neigh{LinkIndex: idx, Family: unix.AF_BRIDGE,
				Flags: netlink.NTF_SELF, State: netlink.NUD_PERMANENT,
				IP: net.IP(r.underlay.AsSlice()), HardwareAddr: r.mac}); err != nil {
				return fmt.Errorf("overlay: FDB entry for peer %q: %w", r.name, err)
			}
		}
		if !neighOK[s] {
			if err := o.nl.NeighSet(&netlink.Neigh{LinkIndex: idx, Family: netlink.FAMILY_V4,
				State: netlink.NUD_PERMANENT, Type: unix.RTN_UNICAST,
				IP: net.IP(r.vtep.AsSlice()), HardwareAddr: r.mac}); err != nil {
				return fmt.Errorf("overlay: neighbour entry for peer %q: %w", r.name, err)
			}
		}
		if !routeOK[s] {
			if err := o.nl.RouteReplace(o.route(idx, r)); err != nil {
				return fmt.Errorf("overlay: route to peer %q (%s): %w", r.name, s, err)
			}
			o.log.Info("overlay route set", "peer", r.name, "subnet", s, "underlay", r.underlay)
		}
	}
	return nil
}

// route is the route to r's subnet: via r's VTEP address, onlink since
// that address is in no subnet of the device, and from our own VTEP
// address so that replies come back over the overlay.
func (o *Overlay) route(idx int, r remote) *netlink.Route {
	return &netlink.Route{
		LinkIndex: idx,
		Dst:       &net.IPNet{IP: net.IP(r.subnet.Addr().AsSlice()), Mask: net.CIDRMask(r.subnet.Bits(), 32)},
		Gw:        net.IP(r.vtep.AsSlice()),
		Src:       net.IP(o.vtep.AsSlice()),
		Flags:     int(netlink.FLAG_ONLINK),
		Scope:     netlink.SCOPE_UNIVERSE,
		Table:     unix.RT_TABLE_MAIN,
	}
}

// routeIs reports whether rt is already the route route would install.
func (o *Overlay) routeIs(rt netlink.Route, r remote) bool {
	gw, _ := netip.AddrFromSlice(rt.Gw)
	src, _ := netip.AddrFromSlice(rt.Src)
	return gw.Unmap() == r.vtep && src.Unmap() == o.vtep &&
		rt.Flags&int(netlink.FLAG_ONLINK) != 0 && rt.Scope == netlink.SCOPE_UNIVERSE &&
		rt.MultiPath == nil && rt.Type == unix.RTN_UNICAST && rt.Priority == 0
}

// prefixOf converts a route destination; nil (the default route) is 0/0.
func prefixOf(n *net.IPNet) netip.Prefix {
	if n == nil {
		return netip.PrefixFrom(netip.IPv4Unspecified(), 0)
	}
	ip, _ := netip.AddrFromSlice(n.IP)
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(ip.Unmap(), ones)
}
