// Package jobnet gives every job on a host its own network namespace and
// address, and keeps jobs of different apps apart.
//
// The layout is routed, not bridged (Calico's, rather than Docker's or
// Flannel's bridge): each job's namespace is joined to the host by a veth
// pair, the job's end (eth0) holds one /32 address from the host's subnet
// and a default route through the host's gateway address, and the host
// routes that /32 to the job's veth. There is no bridge, so every packet a
// job sends, to a neighbour on the same host as much as to the world,
// crosses the host's IP stack, where one nftables table per host decides
// (policy.go): with a bridge, traffic between two jobs of one host would be
// switched below the IP hooks and need a second, bridge-family rule set.
// The gateway address (the subnet's .1) sits on an interface of the host
// of its own, a bridge without ports (kernels without the dummy driver
// have bridges), and is also where the host's resolver for jobs listens.
//
// Subnets come from a cluster range kept in the store (subnet.go): one per
// node, allocated once by a guarded transaction and remembered locally, so
// that a restart never renumbers running jobs. The overlay between hosts
// (VXLAN) is package overlay's; this package only needs the MTU it leaves.
//
// Namespaces are files bind-mounted under a state directory in /run, named
// by job id: they outlive the agent (whose restart re-adopts them by name
// without touching the interfaces) and vanish with a reboot, as the jobs do.
package jobnet
