package controller

import (
	"net/http"
	"sort"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/scheduler"
)

// listHosts answers the live hosts (those whose lease holds their
// record) with what their jobs reserve of them, counted as the scheduler
// counts them: every job on the host that has not ended.
func (c *Controller) listHosts(w http.ResponseWriter, r *http.Request) error {
	st, err := scheduler.LoadState(r.Context(), c.Client)
	if err != nil {
		return err
	}
	ended := map[string]bool{}
	for _, it := range st.JobStatus {
		ended[it.Value.ID] = it.Value.State.Terminal()
	}
	out := make([]api.HostInfo, 0, len(st.Hosts))
	byHost := map[string]int{}
	for i, it := range st.Hosts {
		out = append(out, api.HostInfo{Host: it.Value})
		byHost[it.Value.ID] = i
	}
	for _, it := range st.Jobs {
		j := it.Value
		i, ok := byHost[j.HostID]
		if !ok || ended[j.ID] {
			continue
		}
		out[i].Jobs++
		out[i].ReservedCPUMillis += j.Resources.CPUMillis
		out[i].ReservedMemoryMB += j.Resources.MemoryMB
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	writeJSON(w, http.StatusOK, out)
	return nil
}
