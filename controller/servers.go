package controller

import (
	"net/http"
	"sort"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/discovery"
)

// listServers answers the servers discovery lists: where a client can
// turn when the server it knows is down.
func (c *Controller) listServers(w http.ResponseWriter, r *http.Request) error {
	insts, err := discovery.New(c.Client).Instances(r.Context(), api.ServersService)
	if err != nil {
		return err
	}
	out := make([]api.Server, 0, len(insts))
	for _, inst := range insts {
		out = append(out, api.Server{Name: inst.ID, URL: "https://" + inst.Addr})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	writeJSON(w, http.StatusOK, out)
	return nil
}
