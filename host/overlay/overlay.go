package overlay

import (
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net"
	"net/netip"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Defaults for the zero values of Config.
const (
	DefaultDevice = "pier.vx"
	DefaultVNI    = 1
	DefaultPort   = 4789 // IANA's VXLAN port
)

// Encapsulation overhead of VXLAN: outer IP header, UDP 8, VXLAN 8, inner
// Ethernet 14.
const (
	overheadIPv4 = 20 + 8 + 8 + 14
	overheadIPv6 = 40 + 8 + 8 + 14
)

// Node is one member of the overlay.
type Node struct {
	Name string
	// Underlay is the address other nodes send encapsulated traffic to
	// (the host's address in the store).
	Underlay netip.Addr
	// Subnet is the node's share of the cluster range (IPv4, e.g. a /24);
	// its network address is the node's VTEP address.
	Subnet netip.Prefix
}

// Config configures an Overlay.
type Config struct {
	// Self is this node. Self.Underlay must be an address of an interface
	// in the network namespace: that interface carries the encapsulated
	// traffic and sets the MTU.
	Self Node
	// Device is the VXLAN device's name; "" means DefaultDevice.
	Device string
	// VNI is the VXLAN network identifier, the same on every node; 0 means
	// DefaultVNI.
	VNI int
	// Port is the UDP port of the VXLAN traffic, the same on every node; 0
	// means DefaultPort.
	Port int
	// MTU overrides the overlay MTU; 0 means the underlay interface's MTU
	// minus the VXLAN overhead, which is also the largest value allowed.
	MTU int
	// NetNS is the path of the network namespace to configure (such as
	// /run/netns/NAME or /proc/PID/ns/net); "" means the caller's. Tests
	// use it to run several nodes on one machine.
	NetNS string
	// Log receives what the overlay changes; nil discards it.
	Log *slog.Logger
}

// Overlay manages this node's VXLAN device and its routes to the other
// nodes. Its methods are safe for concurrent use.
type Overlay struct {
	self     Node
	vtep     netip.Addr // self's VTEP address
	dev      string
	vni      int
	port     int
	mtu      int
	underlay int // index of the interface holding self.Underlay
	log      *slog.Logger
	mu       sync.Mutex
	nl       *netlink.Handle // nil once closed
}

// New checks cfg and finds the underlay interface. It changes nothing in
// the kernel: the device appears with the first remote peer given to Sync.
func New(cfg Config) (*Overlay, error) {
	o := &Overlay{
		self: Node{Name: cfg.Self.Name, Underlay: cfg.Self.Underlay.Unmap(), Subnet: cfg.Self.Subnet.Masked()},
		dev:  cfg.Device,
		vni:  cfg.VNI,
		port: cfg.Port,
		log:  cfg.Log,
	}
	if o.dev == "" {
		o.dev = DefaultDevice
	}
	if o.vni == 0 {
		o.vni = DefaultVNI
	}
	if o.port == 0 {
		o.port = DefaultPort
	}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	o.log = o.log.With("component", "overlay", "device", o.dev)
	switch {
	case len(o.dev) > unix.IFNAMSIZ-1:
		return nil, fmt.Errorf("overlay: device name %q is longer than %d bytes", o.dev, unix.IFNAMSIZ-1)
	case o.vni < 1 || o.vni > 1<<24-1:
		return nil, fmt.Errorf("overlay: VNI %d out of range 1-%d", o.vni, 1<<24-1)
	case o.port < 1 || o.port > 65535:
		return nil, fmt.Errorf("overlay: port %d out of range", o.port)
	case !o.self.Underlay.IsValid() || o.self.Underlay.IsUnspecified():
		return nil, fmt.Errorf("overlay: self %q has no underlay address", o.self.Name)
	}
	if err := checkSubnet(o.self.Subnet); err != nil {
		return nil, fmt.Errorf("overlay: self %q: %w", o.self.Name, err)
	}
	o.vtep = o.self.Subnet.Addr()

	var err error
	if cfg.NetNS == "" {
		o.nl, err = netlink.NewHandle(unix.NETLINK_ROUTE)
	} else {
		var ns netns.NsHandle
		ns, err = netns.GetFromPath(cfg.NetNS)
		if err != nil {
			return nil, fmt.Errorf("overlay: network namespace %s: %w", cfg.NetNS, err)
		}
		// The handle's socket lives in ns from now on; the namespace
		// file descriptor is not needed after that.
		o.nl, err = netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
		ns.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("overlay: netlink: %w", err)
	}

	link, err := o.underlayLink()
	if err != nil {
		o.nl.Close()
		return nil, err
	}
	o.underlay = link.Attrs().Index
	overhead := overheadIPv4
	if o.self.Underlay.Is6() {
		overhead = overheadIPv6
	}
	maxMTU := link.Attrs().MTU - overhead
	switch {
	case cfg.MTU == 0:
		o.mtu = maxMTU
	case cfg.MTU < 576 || cfg.MTU > maxMTU:
		o.nl.Close()
		return nil, fmt.Errorf("overlay: MTU %d out of range 576-%d (%s has MTU %d, VXLAN takes %d)",
			cfg.MTU, maxMTU, link.Attrs().Name, link.Attrs().MTU, overhead)
	default:
		o.mtu = cfg.MTU
	}
	return o, nil
}

// underlayLink is the interface that holds self.Underlay.
func (o *Overlay) underlayLink() (netlink.Link, error) {
	family := netlink.FAMILY_V4
	if o.self.Underlay.Is6() {
		family = netlink.FAMILY_V6
	}
	addrs, err := retryDump(func() ([]netlink.Addr, error) { return o.nl.AddrList(nil, family) })
	if err != nil {
		return nil, fmt.Errorf("overlay: listing addresses: %w", err)
	}
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Unmap() == o.self.Underlay {
			link, err := o.nl.LinkByIndex(a.LinkIndex)
			if err != nil {
				return nil, fmt.Errorf("overlay: interface of %s: %w", o.self.Underlay, err)
			}
			return link, nil
		}
	}
	return nil, fmt.Errorf("overlay: no interface has the underlay address %s", o.self.Underlay)
}

// MTU is the MTU of the overlay: every job interface must use it.
func (o *Overlay) MTU() int { return o.mtu }

// VTEP is this node's VTEP address, the source of the traffic the host
// itself sends over the overlay.
func (o *Overlay) VTEP() netip.Addr { return o.vtep }

// Close removes the device, and with it every route, neighbour and FDB
// entry of the overlay, and releases the netlink socket. It is for
// uninstalling and tests: an agent that only stops leaves the overlay up.
func (o *Overlay) Close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.nl == nil {
		return nil
	}
	defer func() { o.nl.Close(); o.nl = nil }()
	link, err := o.nl.LinkByName(o.dev)
	if err != nil {
		if errors.As(err, new(netlink.LinkNotFoundError)) {
			return nil
		}
		return fmt.Errorf("overlay: %w", err)
	}
	if _, ok := link.(*netlink.Vxlan); !ok {
		// Not ours: never delete somebody else's interface.
		return fmt.Errorf("overlay: %s is a %s device, not vxlan", o.dev, link.Type())
	}
	if err := o.nl.LinkDel(link); err != nil {
		return fmt.Errorf("overlay: deleting %s: %w", o.dev, err)
	}
	o.log.Info("overlay device removed")
	return nil
}

// VTEPMAC is the MAC address of the VTEP of the node owning subnet:
// locally administered, unicast, and derived from the subnet alone so that
// every node computes every other node's without it being stored. Distinct
// IPv4 subnets of a cluster range never overlap, so they have distinct
// network addresses and distinct MACs.
func VTEPMAC(subnet netip.Prefix) net.HardwareAddr {
	a := subnet.Masked().Addr().Unmap()
	var b [4]byte
	if a.Is4() {
		b = a.As4()
	} else {
		// Not a valid overlay subnet; still give a stable answer.
		h := fnv.New32a()
		s := a.As16()
		h.Write(s[:])
		h.Write([]byte{byte(subnet.Bits())})
		sum := h.Sum32()
		b = [4]byte{byte(sum >> 24), byte(sum >> 16), byte(sum >> 8), byte(sum)}
	}
	// 0x0e: locally administered (bit 1) and unicast (bit 0 clear); 0x70
	// ('p') keeps pier's MACs recognisable.
	return net.HardwareAddr{0x0e, 0x70, b[0], b[1], b[2], b[3]}
}

// checkSubnet accepts an IPv4 subnet with room for a VTEP address and
// jobs.
func checkSubnet(p netip.Prefix) error {
	if !p.IsValid() || !p.Addr().Is4() {
		return fmt.Errorf("subnet %v is not an IPv4 prefix", p)
	}
	if p.Bits() < 8 || p.Bits() > 30 {
		return fmt.Errorf("subnet %v: prefix length must be 8-30", p)
	}
	return nil
}

// retryDump runs a netlink dump again when the kernel reports that it was
// interrupted by a concurrent change (its result may then be incomplete).
func retryDump[T any](dump func() ([]T, error)) ([]T, error) {
	var (
		res []T
		err error
	)
	for range 5 {
		res, err = dump()
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			return res, err
		}
	}
	return nil, err
}
