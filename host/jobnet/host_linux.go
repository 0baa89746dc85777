package jobnet

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Config is one host's job network.
type Config struct {
	// Subnet is this node's share of the cluster range; jobs get
	// addresses from it and its first address is the gateway.
	Subnet netip.Prefix
	// Cluster is the whole range every node's subnet comes from: jobs may
	// reach only those addresses in it that policy allows.
	Cluster netip.Prefix
	// MTU of the jobs' interfaces: the underlay's less what the overlay
	// takes (package overlay says how much). 0 means 1450.
	MTU int
	// StateDir holds the namespace files, one per job; it must be on a
	// file system that ends with the machine (under /run).
	StateDir string
	// Tag (4 lower-case hex digits) names this host's interfaces (pv<tag>…,
	// pg<tag>) and nftables table, so that several agents can share one
	// network namespace in tests without touching each other's.
	Tag string
	Log *slog.Logger
}

// Host is a host's job network: the gateway, the jobs' namespaces and the
// policy between them.
type Host struct {
	cfg    Config
	gw     netip.Addr
	policy *policy
}

// TagFor derives a Config.Tag from something unique to the agent (its data
// directory).
func TagFor(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:2])
}

// Open sets up the host's side: forwarding on, the gateway interface, the
// state directory and the policy table. It is idempotent, so an agent that
// restarts calls it again and running jobs keep their networks.
func Open(cfg Config) (*Host, error) {
	if !cfg.Subnet.Addr().Is4() || cfg.Subnet.Bits() > 30 {
		return nil, fmt.Errorf("jobnet: subnet %s: want an IPv4 prefix of /30 or wider", cfg.Subnet)
	}
	if cfg.MTU == 0 {
		cfg.MTU = 1450
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if len(cfg.Tag) != 4 {
		return nil, fmt.Errorf("jobnet: tag %q: want 4 hex digits", cfg.Tag)
	}
	h := &Host{cfg: cfg, gw: cfg.Subnet.Masked().Addr().Next()}
	if err := os.MkdirAll(cfg.StateDir, 0o755); err != nil {
		return nil, err
	}
	if err := sysctl("net/ipv4/ip_forward", "1"); err != nil {
		return nil, err
	}
	if err := h.ensureGateway(); err != nil {
		return nil, err
	}
	p, err := openPolicy(h)
	if err != nil {
		return nil, err
	}
	h.policy = p
	return h, nil
}

// Gateway is the jobs' default router and resolver address.
func (h *Host) Gateway() netip.Addr { return h.gw }

// Subnet is the host's subnet.
func (h *Host) Subnet() netip.Prefix { return h.cfg.Subnet }

// NSPath is where job id's namespace is mounted.
func (h *Host) NSPath(id string) string { return filepath.Join(h.cfg.StateDir, id) }

func (h *Host) gatewayName() string { return "pg" + h.cfg.Tag }

// hostIf is the host's end of a job's veth pair: pv<tag><8 hex of the id>,
// 14 bytes, under the kernel's 15.
func (h *Host) hostIf(id string) string {
	sum := sha256.Sum256([]byte(id))
	return "pv" + h.cfg.Tag + hex.EncodeToString(sum[:4])
}

// HostIf names the host's end of job id's veth pair.
func (h *Host) HostIf(id string) string { return h.hostIf(id) }

// ifPrefix matches every job interface of this host, for the policy.
func (h *Host) ifPrefix() string { return "pv" + h.cfg.Tag }

func (h *Host) ensureGateway() error {
	name := h.gatewayName()
	l, err := netlink.LinkByName(name)
	if err != nil {
		if !errors.As(err, new(netlink.LinkNotFoundError)) {
			return fmt.Errorf("jobnet: gateway: %w", err)
		}
		if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name}}); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("jobnet: add gateway interface: %w", err)
		}
		if l, err = netlink.LinkByName(name); err != nil {
			return fmt.Errorf("jobnet: gateway: %w", err)
		}
	}
	addr := &netlink.Addr{IPNet: ipNet(h.gw, 32)}
	if err := netlink.AddrReplace(l, addr); err != nil {
		return fmt.Errorf("jobnet: gateway address: %w", err)
	}
	return netlink.LinkSetUp(l)
}

// Close removes the policy table and the gateway interface. Jobs still
// running lose their network; it is for tests and for removing a host.
func (h *Host) Close() error {
	var errs []error
	if h.policy != nil {
		errs = append(errs, h.policy.close())
	}
	if l, err := netlink.LinkByName(h.gatewayName()); err == nil {
		errs = append(errs, netlink.LinkDel(l))
	}
	return errors.Join(errs...)
}

// Attach gives job id a namespace with address ip, or finds the one it
// has (an agent restart re-adopting a running job), and returns the
// namespace's path for the runtime to join.
func (h *Host) Attach(id string, ip netip.Addr) (string, error) {
	if !h.cfg.Subnet.Contains(ip) || ip == h.gw {
		return "", fmt.Errorf("jobnet: address %s is not a job address of %s", ip, h.cfg.Subnet)
	}
	path := h.NSPath(id)
	if isNS(path) {
		if l, err := netlink.LinkByName(h.hostIf(id)); err == nil {
			return path, h.routeTo(l, ip)
		}
	}
	// Whatever is left of an earlier try goes, so the steps below start
	// from nothing.
	if err := h.Detach(id); err != nil {
		return "", err
	}
	if err := createNS(path); err != nil {
		return "", err
	}
	if err := h.plumb(id, path, ip); err != nil {
		h.Detach(id)
		return "", err
	}
	return path, nil
}

// plumb makes the veth pair and configures both ends.
func (h *Host) plumb(id, path string, ip netip.Addr) error {
	hostName := h.hostIf(id)
	peerName := "pj" + hostName[2:]
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: hostName, MTU: h.cfg.MTU}, PeerName: peerName}
	if err := netlink.LinkAdd(veth); err != nil {
		return fmt.Errorf("jobnet: add veth: %w", err)
	}
	host, err := netlink.LinkByName(hostName)
	if err != nil {
		return err
	}
	peer, err := netlink.LinkByName(peerName)
	if err != nil {
		return err
	}
	// No IPv6 on the host's end: its link-local address would be a way to
	// the host's services around the IPv4 policy.
	sysctl("net/ipv6/conf/"+hostName+"/disable_ipv6", "1")
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	err = netlink.LinkSetNsFd(peer, int(f.Fd()))
	f.Close()
	if err != nil {
		return fmt.Errorf("jobnet: move veth: %w", err)
	}
	hostMAC := host.Attrs().HardwareAddr
	if err := inNS(path, func() error { return h.configureJobSide(peerName, ip, hostMAC) }); err != nil {
		return err
	}
	if err := netlink.LinkSetUp(host); err != nil {
		return fmt.Errorf("jobnet: veth up: %w", err)
	}
	return h.routeTo(host, ip)
}

// configureJobSide runs inside the job's namespace: eth0 with the job's
// /32, a permanent neighbour entry for the gateway (the host's veth end,
// so no ARP is needed to leave), and the default route through it.
func (h *Host) configureJobSide(peerName string, ip netip.Addr, hostMAC net.HardwareAddr) error {
	sysctl("net/ipv6/conf/all/disable_ipv6", "1")
	sysctl("net/ipv6/conf/default/disable_ipv6", "1")
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return err
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		return err
	}
	l, err := netlink.LinkByName(peerName)
	if err != nil {
		return err
	}
	if err := netlink.LinkSetName(l, "eth0"); err != nil {
		return fmt.Errorf("jobnet: rename: %w", err)
	}
	if err := netlink.AddrAdd(l, &netlink.Addr{IPNet: ipNet(ip, 32)}); err != nil {
		return fmt.Errorf("jobnet: job address: %w", err)
	}
	if err := netlink.LinkSetUp(l); err != nil {
		return err
	}
	idx := l.Attrs().Index
	gw := net.IP(h.gw.AsSlice())
	if err := netlink.NeighSet(&netlink.Neigh{LinkIndex: idx, Family: netlink.FAMILY_V4, State: netlink.NUD_PERMANENT, IP: gw, HardwareAddr: hostMAC}); err != nil {
		return fmt.Errorf("jobnet: gateway neighbour: %w", err)
	}
	if err := netlink.RouteReplace(&netlink.Route{LinkIndex: idx, Dst: ipNet(h.gw, 32), Scope: netlink.SCOPE_LINK}); err != nil {
		return fmt.Errorf("jobnet: gateway route: %w", err)
	}
	if err := netlink.RouteReplace(&netlink.Route{LinkIndex: idx, Gw: gw, Dst: ipNet(netip.IPv4Unspecified(), 0)}); err != nil {
		return fmt.Errorf("jobnet: default route: %w", err)
	}
	return nil
}

// routeTo routes the job's address to its veth, with the gateway as the
// source of what the host itself sends there (health checks, the router).
func (h *Host) routeTo(l netlink.Link, ip netip.Addr) error {
	err := netlink.RouteReplace(&netlink.Route{LinkIndex: l.Attrs().Index, Dst: ipNet(ip, 32), Scope: netlink.SCOPE_LINK, Src: net.IP(h.gw.AsSlice())})
	if err != nil {
		return fmt.Errorf("jobnet: route to job: %w", err)
	}
	return nil
}

// Detach removes job id's interfaces and namespace; it is idempotent.
func (h *Host) Detach(id string) error {
	var errs []error
	if l, err := netlink.LinkByName(h.hostIf(id)); err == nil {
		// Deleting one end deletes the pair and the host route with it.
		if err := netlink.LinkDel(l); err != nil {
			errs = append(errs, fmt.Errorf("jobnet: remove veth: %w", err))
		}
	}
	errs = append(errs, removeNS(h.NSPath(id)))
	return errors.Join(errs...)
}

// Attached lists the jobs that have a namespace file here, for the agent
// to detach those it no longer runs.
func (h *Host) Attached() ([]string, error) {
	ents, err := os.ReadDir(h.cfg.StateDir)
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(ents))
	for _, e := range ents {
		ids = append(ids, e.Name())
	}
	return ids, nil
}

func ipNet(a netip.Addr, bits int) *net.IPNet {
	return &net.IPNet{IP: net.IP(a.AsSlice()), Mask: net.CIDRMask(bits, a.BitLen())}
}

// sysctl writes a /proc/sys/net setting of the calling thread's namespace.
func sysctl(name, value string) error {
	p := "/proc/sys/" + strings.TrimPrefix(name, "/")
	if err := os.WriteFile(p, []byte(value), 0o644); err != nil {
		return fmt.Errorf("jobnet: sysctl %s: %w", name, err)
	}
	return nil
}

// OverlayOverhead is what VXLAN over IPv4 adds to a packet: the jobs'
// MTU is the underlay's less this, so that nothing is fragmented.
const OverlayOverhead = 50

// UnderlayMTU is the MTU of the interface that holds addr, or of the one
// the default route leaves by when addr is a loopback address (a single
// node advertising 127.0.0.1); 1500 when neither is found.
func UnderlayMTU(addr netip.Addr) int {
	if !addr.IsLoopback() {
		links, _ := netlink.LinkList()
		for _, l := range links {
			addrs, _ := netlink.AddrList(l, netlink.FAMILY_V4)
			for _, a := range addrs {
				if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Unmap() == addr {
					return l.Attrs().MTU
				}
			}
		}
	}
	routes, _ := netlink.RouteGet(net.IPv4(1, 1, 1, 1))
	for _, r := range routes {
		if l, err := netlink.LinkByIndex(r.LinkIndex); err == nil {
			return l.Attrs().MTU
		}
	}
	return 1500
}

// LocallyRouted reports whether this machine already has an address or a
// route within p: a subnet that would clash with its own networks (or
// with another pier's on the same machine).
func LocallyRouted(p netip.Prefix) bool {
	var nets []*net.IPNet
	if routes, err := netlink.RouteList(nil, netlink.FAMILY_V4); err == nil {
		for _, r := range routes {
			nets = append(nets, r.Dst)
		}
	}
	if addrs, err := netlink.AddrList(nil, netlink.FAMILY_V4); err == nil {
		for _, a := range addrs {
			nets = append(nets, a.IPNet)
		}
	}
	for _, n := range nets {
		if n == nil {
			continue
		}
		ones, _ := n.Mask.Size()
		ip, ok := netip.AddrFromSlice(n.IP)
		if ok && ones > 0 && netip.PrefixFrom(ip.Unmap(), ones).Masked().Overlaps(p) {
			return true
		}
	}
	return false
}

// Remove deletes what Open made for the host of this tag, the gateway
// interface and the policy table, without a Host: for whoever removes a
// host for good (Purge, tests) after its jobs are gone.
func Remove(tag string) error {
	h := &Host{cfg: Config{Tag: tag}}
	h.policy = &policy{h: h}
	return h.Close()
}
