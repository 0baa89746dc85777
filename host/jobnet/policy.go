package jobnet

import (
	"net/netip"
	"slices"
	"sort"
)

// Rules are the facts the policy is made from: this host's jobs, every
// job's address in the cluster, the access rules and the nodes.
type Rules struct {
	// Local are the jobs of this host that have their own namespace.
	Local map[netip.Addr]LocalJob
	// Endpoints map every job address in the cluster to its app.
	Endpoints map[netip.Addr]string
	// Allow maps an app to the apps that may open connections to it (its
	// own jobs always may): `pier access allow`, and attached resources.
	Allow map[string][]string
	// Nodes are the addresses of every node of the cluster, which jobs
	// may not reach (the host's own are refused regardless).
	Nodes []netip.Addr
}

// LocalJob is a job of this host, as the policy sees it.
type LocalJob struct {
	App string
	// ControlPlane jobs (builds, backups) may reach the controller through
	// the host's relay on the gateway.
	ControlPlane bool
}

// appPolicy is what one app's local jobs may reach.
type appPolicy struct {
	app  string
	srcs []netip.Addr // its jobs on this host
	dsts []netip.Addr // job addresses it may reach
}

// plan turns rules into one appPolicy per app with jobs on this host, in
// a stable order.
func (r Rules) plan() []appPolicy {
	byApp := map[string]*appPolicy{}
	for ip, j := range r.Local {
		p := byApp[j.App]
		if p == nil {
			p = &appPolicy{app: j.App}
			byApp[j.App] = p
		}
		p.srcs = append(p.srcs, ip)
	}
	for ip, owner := range r.Endpoints {
		for app, p := range byApp {
			if owner == app || slices.Contains(r.Allow[owner], app) {
				p.dsts = append(p.dsts, ip)
			}
		}
	}
	// A local job is an endpoint of its own app even before the cluster's
	// view of endpoints has caught up with it.
	for ip, j := range r.Local {
		if p := byApp[j.App]; !slices.Contains(p.dsts, ip) {
			p.dsts = append(p.dsts, ip)
		}
	}
	out := make([]appPolicy, 0, len(byApp))
	for _, p := range byApp {
		sortAddrs(p.srcs)
		sortAddrs(p.dsts)
		out = append(out, *p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].app < out[j].app })
	return out
}

func sortAddrs(a []netip.Addr) { slices.SortFunc(a, func(x, y netip.Addr) int { return x.Compare(y) }) }
