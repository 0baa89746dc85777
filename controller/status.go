package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"time"

	"go.etcd.io/etcd/server/v3/storage"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/discovery"
)

// GET /v1/status: the cluster's health in one answer, made of reads only
// (it must answer when the store takes no writes, which is when it is
// needed most). Each server adds what only it knows (its disk) when
// asked with ?self=1; the server asked first asks the others so, with the
// caller's own key.

const statusTimeout = 3 * time.Second

func (c *Controller) clusterStatus(w http.ResponseWriter, r *http.Request) error {
	if r.URL.Query().Get("self") != "" {
		writeJSON(w, http.StatusOK, c.selfStatus())
		return nil
	}
	ctx, cancel := context.WithTimeout(r.Context(), statusTimeout)
	defer cancel()
	st := api.ClusterStatus{Problems: []string{}, Checked: time.Now().UTC()}
	var wg sync.WaitGroup
	wg.Go(func() { st.Store = c.storeStatus(ctx) })
	wg.Go(func() { st.Servers = c.serverStatuses(ctx, r.Header.Get("Authorization")) })
	var hostsErr, deploysErr, certsErr error
	wg.Go(func() { st.Hosts, hostsErr = c.hostStatuses(ctx) })
	wg.Go(func() { st.Leaders = c.leaders(ctx) })
	wg.Go(func() { st.Routers = c.routerStatuses(ctx) })
	wg.Go(func() { st.Deployments, deploysErr = c.deploymentsToLookAt(ctx, st.Checked) })
	wg.Go(func() { st.Crashing = c.crashing(ctx) })
	wg.Go(func() { st.Certificates, certsErr = c.certificatesToLookAt(ctx, st.Checked) })
	wg.Wait()
	st.Problems = append(problems(st, hostsErr), moreProblems(st, st.Checked)...)
	for what, err := range map[string]error{"deployments": deploysErr, "certificates": certsErr} {
		if err != nil {
			st.Problems = append(st.Problems, fmt.Sprintf("%s: cannot list them: %v", what, err))
		}
	}
	st.Healthy = len(st.Problems) == 0
	writeJSON(w, http.StatusOK, st)
	return nil
}

// problems lists what is wrong, each in a sentence that names the part.
func problems(st api.ClusterStatus, hostsErr error) []string {
	out := []string{}
	if st.Store.Leader == "" {
		out = append(out, "store: no leader (fewer than a majority of the servers' etcd members answer)")
	}
	for _, m := range st.Store.Members {
		switch {
		case !m.Reachable:
			out = append(out, fmt.Sprintf("store: member %s does not answer: %s", m.Name, m.Error))
		case m.QuotaBytes > 0 && m.DBBytes > m.QuotaBytes*8/10:
			out = append(out, fmt.Sprintf("store: member %s's database takes %d MiB of its %d MiB quota", m.Name, m.DBBytes>>20, m.QuotaBytes>>20))
		}
	}
	for _, a := range st.Store.Alarms {
		out = append(out, "store: alarm "+a+": the cluster takes no writes until it is cleared")
	}
	for _, s := range st.Servers {
		switch {
		case !s.Reachable:
			out = append(out, fmt.Sprintf("server %s does not answer: %s", s.Name, s.Error))
		case s.Disk.Pressure != "":
			out = append(out, fmt.Sprintf("server %s: %s", s.Name, s.Disk.Pressure))
		}
	}
	if hostsErr != nil {
		out = append(out, "hosts: cannot list them: "+hostsErr.Error())
	}
	for _, h := range st.Hosts {
		if h.DiskPressure != "" {
			out = append(out, fmt.Sprintf("host %s takes no new jobs: %s", h.ID, h.DiskPressure))
		}
	}
	return append(out, nodeProblems(st)...)
}

// selfStatus is what this server knows only of itself.
func (c *Controller) selfStatus() api.ServerStatus {
	s := api.ServerStatus{Name: c.ServerName, URL: c.BlobURL, Reachable: true}
	if c.Replica != nil {
		s.MissingBlobs = len(c.Replica.Missing())
		pending, lag := c.Replica.Lag(time.Now())
		s.PendingBlobs, s.ReplicationLag = pending, api.Duration(lag.Round(time.Second))
	}
	if c.Disk != nil {
		d := c.Disk.Status()
		s.Disk = api.DiskStatus{Dir: d.Dir, FreeBytes: d.Free, TotalBytes: d.Total, LowBytes: d.Low, Pressure: d.Reason()}
	}
	return s
}

func (c *Controller) storeStatus(ctx context.Context) api.StoreStatus {
	out := api.StoreStatus{Members: []api.StoreMember{}}
	members, err := c.Client.MemberList(ctx)
	if err != nil {
		out.Members = append(out.Members, api.StoreMember{Name: "?", Error: err.Error()})
		return out
	}
	names := map[uint64]string{}
	for _, m := range members.Members {
		names[m.ID] = m.Name
	}
	out.Members = make([]api.StoreMember, len(members.Members))
	var wg sync.WaitGroup
	for i, m := range members.Members {
		out.Members[i] = api.StoreMember{Name: m.Name}
		if len(m.ClientURLs) == 0 {
			out.Members[i].Error = "not started yet (no client URL)"
			continue
		}
		wg.Go(func() {
			sr, err := c.Client.Status(ctx, m.ClientURLs[0])
			if err != nil {
				out.Members[i].Error = err.Error()
				return
			}
			// etcd does not report its quota; pier runs members with the
			// default.
			out.Members[i] = api.StoreMember{Name: m.Name, Reachable: true, DBBytes: sr.DbSize, DBInUse: sr.DbSizeInUse, QuotaBytes: storage.DefaultQuotaBytes}
			if sr.Leader != 0 {
				out.Leader = names[sr.Leader] // the same for all who answer
			}
		})
	}
	wg.Wait()
	if alarms, err := c.Client.AlarmList(ctx); err == nil {
		for _, a := range alarms.Alarms {
			out.Alarms = append(out.Alarms, fmt.Sprintf("%s on server %s", a.Alarm, names[a.MemberID]))
		}
	}
	return out
}

// serverStatuses asks every server (this one directly) for its own view.
func (c *Controller) serverStatuses(ctx context.Context, auth string) []api.ServerStatus {
	insts, err := discovery.New(c.Client).Instances(ctx, api.ServersService)
	out := []api.ServerStatus{c.selfStatus()}
	if err != nil {
		return out
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, inst := range insts {
		if inst.ID == c.ServerName {
			continue
		}
		wg.Go(func() {
			s := c.askServer(ctx, "https://"+inst.Addr, auth)
			s.Name, s.URL = inst.ID, "https://"+inst.Addr
			mu.Lock()
			out = append(out, s)
			mu.Unlock()
		})
	}
	wg.Wait()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (c *Controller) askServer(ctx context.Context, base, auth string) api.ServerStatus {
	var s api.ServerStatus
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/status?self=1", nil)
	if err != nil {
		return api.ServerStatus{Error: err.Error()}
	}
	req.Header.Set("Authorization", auth)
	resp, err := c.peerClient().Do(req)
	if err != nil {
		return api.ServerStatus{Error: err.Error()}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return api.ServerStatus{Error: resp.Status}
	}
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		return api.ServerStatus{Error: err.Error()}
	}
	s.Reachable = true
	return s
}

// peerClient reaches the other servers' APIs with this server's cluster
// certificate, trusting the cluster's CA.
func (c *Controller) peerClient() *http.Client {
	c.peerOnce.Do(func() {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.Proxy = nil // servers talk to each other directly
		if c.HostTLS != nil {
			tr.TLSClientConfig = c.HostTLS.Clone()
		}
		c.peers = &http.Client{Transport: tr, Timeout: statusTimeout}
	})
	return c.peers
}
