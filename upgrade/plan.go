package upgrade

import (
	"cmp"
	"slices"

	"github.com/pierpaas/pier/api"
)

// kindRank orders the kinds: servers first, so that the controller and
// the loop run the new code before anything else does and a store
// schema change meets new readers first; then hosts, whose agents the
// routers' backends depend on; routers last, as the edge. A `pier up`
// node is all three, and goes with the servers.
func kindRank(k api.NodeKind) int {
	switch k {
	case api.NodeServer, api.NodeUp:
		return 0
	case api.NodeHost:
		return 1
	case api.NodeRouter:
		return 2
	}
	return 3
}

// Plan makes an upgrade's steps from the nodes that run now: servers one
// by one with the etcd leader last (its restart costs an election, and
// only one is needed then), then hosts, then routers, each kind by name.
// A node that already runs the target binary is skipped.
func Plan(nodes []api.Node, etcdLeader, target string) []api.UpgradeStep {
	sorted := slices.Clone(nodes)
	slices.SortFunc(sorted, func(a, b api.Node) int {
		if c := cmp.Compare(kindRank(a.Kind), kindRank(b.Kind)); c != 0 {
			return c
		}
		if la, lb := isLeader(a, etcdLeader), isLeader(b, etcdLeader); la != lb {
			if la {
				return 1
			}
			return -1
		}
		return cmp.Compare(a.Name, b.Name)
	})
	steps := make([]api.UpgradeStep, 0, len(sorted))
	for _, n := range sorted {
		st := api.UpgradeStep{Node: api.NodeKey(n.Kind, n.Name), Kind: n.Kind, Name: n.Name, From: n.SHA256, State: api.StepPending}
		if n.SHA256 == target {
			st.State = api.StepSkipped
		}
		steps = append(steps, st)
	}
	return steps
}

func isLeader(n api.Node, etcdLeader string) bool {
	return etcdLeader != "" && (n.Kind == api.NodeServer || n.Kind == api.NodeUp) && n.Name == etcdLeader
}
