package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/store"
)

// The machines in GET /v1/status: each live host with its lease (how
// long since its agent renewed it) and its agent's own answer (its data
// disk, the machine's memory, what its jobs reserve), and each running
// router, probed at its /readyz.

const (
	// leaseLate is how much of its TTL a host's lease may age before the
	// host is worth a look: the agent renews it every third of it.
	leaseLate = 2.0 / 3
	// lowMemory is the share of the machine's memory under which a
	// host's available memory is worth a look.
	lowMemory = 0.05
	// replicationLate is how long a server may lack a kept artifact
	// before it is worth a look.
	replicationLate = 10 * time.Minute
)

func (c *Controller) hostStatuses(ctx context.Context) ([]api.HostHealth, error) {
	resp, err := c.Client.Get(ctx, store.HostsPrefix, clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	drains, _, err := store.List[api.HostDrain](ctx, c.Client, store.HostDrainsPrefix)
	if err != nil {
		return nil, err
	}
	drained := map[string]bool{}
	for _, d := range drains {
		drained[d.Value.Host] = true
	}
	out := make([]api.HostHealth, 0, len(resp.Kvs))
	var hosts []api.Host
	var leases []clientv3.LeaseID
	for _, kv := range resp.Kvs {
		var h api.Host
		if err := json.Unmarshal(kv.Value, &h); err != nil {
			continue
		}
		hosts = append(hosts, h)
		leases = append(leases, clientv3.LeaseID(kv.Lease))
		out = append(out, api.HostHealth{ID: h.ID, Drained: drained[h.ID], DiskPressure: h.DiskPressure, Version: h.Version, MemoryMB: h.MemoryMB})
	}
	var wg sync.WaitGroup
	for i, h := range hosts {
		wg.Go(func() {
			if leases[i] != 0 {
				if ttl, err := c.Client.TimeToLive(ctx, leases[i]); err == nil && ttl.TTL >= 0 {
					out[i].LeaseTTL = api.Duration(time.Duration(ttl.GrantedTTL) * time.Second)
					out[i].LeaseAge = api.Duration(time.Duration(ttl.GrantedTTL-ttl.TTL) * time.Second)
				}
			}
			st, err := c.askHost(ctx, h.APIAddr)
			if err != nil {
				out[i].Error = err.Error()
				return
			}
			out[i].Reachable = true
			out[i].Disk = st.Disk
			out[i].ReservedMemoryMB, out[i].Jobs = st.UsedMemoryMB, st.Jobs
			out[i].MemAvailableMB, out[i].MemTotalMB = st.MemAvailableMB, st.MemTotalMB
		})
	}
	wg.Wait()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// askHost is a host agent's own status.
func (c *Controller) askHost(ctx context.Context, addr string) (api.HostStatus, error) {
	var st api.HostStatus
	if c.HostTLS == nil {
		return st, fmt.Errorf("this server cannot reach host agents")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+"/v1/status", nil)
	if err != nil {
		return st, err
	}
	resp, err := c.peerClient().Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("its agent answers %s", resp.Status)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// routerStatuses lists the running routers (pier up processes among
// them) from their node records, each probed at its /readyz.
func (c *Controller) routerStatuses(ctx context.Context) []api.RouterHealth {
	nodes, _, err := store.List[api.Node](ctx, c.Client, store.NodesPrefix)
	if err != nil {
		return nil
	}
	var out []api.RouterHealth
	var urls []string
	for _, it := range nodes {
		n := it.Value
		if n.Kind != api.NodeRouter && n.Kind != api.NodeUp {
			continue
		}
		out = append(out, api.RouterHealth{Name: n.Name, Kind: n.Kind, Version: n.Version})
		urls = append(urls, n.ReadyURL)
	}
	var wg sync.WaitGroup
	for i := range out {
		wg.Go(func() {
			if urls[i] == "" {
				out[i].Error = "it registered no readiness URL"
				return
			}
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, urls[i], nil)
			if err != nil {
				out[i].Error = err.Error()
				return
			}
			resp, err := c.peerClient().Do(req)
			if err != nil {
				out[i].Error = err.Error()
				return
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				out[i].Error = "not ready: " + resp.Status
				return
			}
			out[i].Ready = true
		})
	}
	wg.Wait()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// nodeProblems are the sentences of the hosts' leases and agents, the
// routers, and the servers' replication.
func nodeProblems(st api.ClusterStatus) []string {
	var out []string
	for _, h := range st.Hosts {
		ttl, age := time.Duration(h.LeaseTTL), time.Duration(h.LeaseAge)
		if ttl > 0 && float64(age) > float64(ttl)*leaseLate {
			out = append(out, fmt.Sprintf("host %s: its agent last renewed its lease %s ago (the host is lost at %s)", h.ID, age, ttl))
		}
		if !h.Reachable {
			out = append(out, fmt.Sprintf("host %s: its agent does not answer: %s", h.ID, h.Error))
			continue
		}
		if h.Disk != nil && h.Disk.Pressure != "" && h.DiskPressure == "" {
			// The record says so too once the agent has published it.
			out = append(out, fmt.Sprintf("host %s takes no new jobs: %s", h.ID, h.Disk.Pressure))
		}
		if h.MemTotalMB > 0 && float64(h.MemAvailableMB) < float64(h.MemTotalMB)*lowMemory {
			out = append(out, fmt.Sprintf("host %s: %d MiB of memory available of %d MiB", h.ID, h.MemAvailableMB, h.MemTotalMB))
		}
	}
	for _, r := range st.Routers {
		if !r.Ready {
			out = append(out, fmt.Sprintf("router %s: %s", r.Name, r.Error))
		}
	}
	for _, s := range st.Servers {
		if lag := time.Duration(s.ReplicationLag); s.Reachable && lag > replicationLate && s.PendingBlobs > s.MissingBlobs {
			out = append(out, fmt.Sprintf("server %s: blob replication is %s behind (%d kept artifacts to copy)", s.Name, lag, s.PendingBlobs-s.MissingBlobs))
		}
	}
	return out
}
