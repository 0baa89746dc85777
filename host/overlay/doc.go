// Package overlay joins the hosts of a pier cluster with a routed VXLAN
// overlay, so that a job on one host reaches a job on another by its own
// IP address (issue 17).
//
// # Addressing
//
// The cluster has one private range (e.g. 10.240.0.0/12). Every node that
// runs jobs or routes traffic owns one subnet of it (a /24), and its jobs
// take /32 addresses from that subnet. This package only makes the other
// nodes' subnets reachable; giving jobs addresses, routing them to their
// namespaces and the firewall policy belong to the host agent.
//
// # Why routed VXLAN, Flannel's scheme
//
// Every host has one kernel VXLAN device (default "pier.vx"). Its address is
// the network address of the host's subnet as a /32 (10.240.3.0/32 for
// 10.240.3.0/24): the host's VTEP address. For each other node the host has
//
//	route  10.240.7.0/24 via 10.240.7.0 dev pier.vx onlink src 10.240.3.0
//	neigh  10.240.7.0 lladdr VTEPMAC(10.240.7.0/24) dev pier.vx permanent
//	fdb    VTEPMAC(10.240.7.0/24) dev pier.vx dst <underlay of that node> self permanent
//
// A packet for a job on another host therefore leaves through an ordinary
// route, is given the peer's VTEP MAC by the static neighbour entry, and the
// FDB entry for that MAC tells the kernel which underlay address to send
// the UDP-encapsulated frame to. The receiving kernel decapsulates it, sees
// its own device MAC, and routes the inner packet to the job like any other.
//
// Routed rather than bridged: there is no cluster-wide layer 2 segment, no
// broadcast or ARP flooding between hosts, and every host keeps routing
// (and hence nftables policy) in its own hands. Kernel VXLAN rather than a
// userspace tunnel: encapsulation stays in the kernel with the NIC's
// offloads, which is what keeps overlay throughput close to the underlay's.
//
// The route's src is the host's own VTEP address, so a packet the host
// itself originates towards another subnet (a health check, the router on a
// node with no jobs) carries an address that the peer routes back over the
// overlay; with the underlay address as source the reply would go out of
// the wrong interface and be dropped by reverse-path filtering.
//
// # Why no learning
//
// The device is created with learning off and every neighbour and FDB
// entry is static (NUD_PERMANENT). Membership is already known exactly:
// every node is in the store, and the caller passes the full list to Sync.
// Learning from traffic (or multicast groups for flooding) would add state
// that can go stale, a spoofable path (any UDP packet to port 4789 could
// teach the kernel a MAC), and unknown-destination floods. Because the VTEP
// MAC is derived from the subnet (VTEPMAC), nothing beyond a node's subnet
// and underlay address needs to be published.
//
// Sync is level-triggered: it compares the kernel's routes, neighbour and
// FDB entries on the device with what the peer list implies, adds what is
// missing, replaces what differs and deletes what is stale. Calling it
// again with the same list changes nothing; calling it periodically repairs
// anything an operator or a crash left behind.
//
// # What the firewall must add
//
// Static entries decide where this host sends; they do not authenticate
// what it receives. The kernel decapsulates any UDP packet to the VXLAN
// port that carries the right VNI, whatever its outer source, and the
// inner packet may claim any job's address. The host's nftables policy
// must therefore accept the VXLAN port only from the other nodes' underlay
// addresses, and jobs must not be able to send to hosts' addresses at all
// (issue 17's policy already forbids that). VXLAN is not encrypted: an
// underlay that crosses untrusted networks needs IPsec or WireGuard below
// it.
//
// # MTU
//
// VXLAN over IPv4 adds 50 bytes to every frame (outer IPv4 20, UDP 8, VXLAN
// 8, inner Ethernet 14); over IPv6 70. The device therefore gets the MTU of
// the underlay interface (the one that holds the node's underlay address)
// minus that overhead, and MTU reports it: every job interface must use the
// same value, or TCP would negotiate segments that only fit the underlay
// and large packets between hosts would silently vanish.
//
// # Lifetime
//
// The device is created lazily by the first Sync that has a remote peer, so
// a single-node install never gets one. A device left by a previous run
// is kept as it is when its settings match (Sync then only corrects its
// entries), so an agent restart does not interrupt traffic; a device with
// other settings (VNI, port, underlay) is recreated. Close
// removes the device (uninstall and tests); an agent that merely stops
// should leave it in place and not call Close.
package overlay
