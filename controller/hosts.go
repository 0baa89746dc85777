package controller

import (
	"errors"
	"net/http"
	"sort"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/scheduler"
	"github.com/pierpaas/pier/store"
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
	draining := map[string]bool{}
	for _, it := range st.Drains {
		draining[it.Value.Host] = true
	}
	out := make([]api.HostInfo, 0, len(st.Hosts))
	byHost := map[string]int{}
	for i, it := range st.Hosts {
		out = append(out, api.HostInfo{Host: it.Value, Draining: draining[it.Value.ID]})
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

// drainHost starts emptying a live host for maintenance (see
// api.HostDrain); draining it again changes nothing.
func (c *Controller) drainHost(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	hk, err := store.Key(store.HostsPrefix, id)
	if err != nil {
		return notFound("no live host %q", id)
	}
	if _, _, err := store.Get[api.Host](r.Context(), c.Client, hk); errors.Is(err, store.ErrNotFound) {
		return notFound("no live host %q", id)
	} else if err != nil {
		return err
	}
	dk, _ := store.Key(store.HostDrainsPrefix, id)
	d := api.HostDrain{Host: id, Since: time.Now().UTC()}
	if _, err := store.Create(r.Context(), c.Client, dk, d); err != nil && !errors.Is(err, store.ErrConflict) {
		return err
	}
	c.Log.Info("host drain started", "host", id)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// undrainHost makes a drained host usable again.
func (c *Controller) undrainHost(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	dk, err := store.Key(store.HostDrainsPrefix, id)
	if err != nil {
		return notFound("host %q is not being drained", id)
	}
	resp, err := c.Client.Delete(r.Context(), dk)
	if err != nil {
		return err
	}
	if resp.Deleted == 0 {
		return notFound("host %q is not being drained", id)
	}
	c.Log.Info("host drain ended", "host", id)
	w.WriteHeader(http.StatusNoContent)
	return nil
}
