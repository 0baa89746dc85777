package controller

import (
	"errors"
	"net/http"
	"sort"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/blobstore"
	"github.com/pierpaas/pier/store"
	"github.com/pierpaas/pier/upgrade"
)

// POST /v1/upgrades records a rolling upgrade of pier itself to a binary
// already uploaded to the blobstore; the elected upgrade loop (package
// upgrade) carries it out, so the request returns at once and any
// server can finish what another began.

func (c *Controller) createUpgrade(w http.ResponseWriter, r *http.Request) error {
	var req api.UpgradeRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if !blobstore.ValidDigest(req.SHA256) || req.Size <= 0 {
		return badRequest("an upgrade needs the sha256 and size of a binary uploaded to the blobstore")
	}
	if req.Trial != 0 && time.Duration(req.Trial) < 20*time.Second {
		return badRequest("trial %s: a node needs at least 20s to restart and be checked", time.Duration(req.Trial))
	}
	if req.Drain < 0 {
		return badRequest("drain must not be negative")
	}
	b, err := c.statBlob(r.Context(), req.SHA256)
	if errors.Is(err, blobstore.ErrNotFound) {
		return badRequest("no blob %s: upload the binary first", req.SHA256)
	} else if err != nil {
		return err
	}
	if b.Size != req.Size {
		return badRequest("blob %s has %d bytes, not %d", req.SHA256, b.Size, req.Size)
	}
	if err := c.storeHealthy(r); err != nil {
		return err
	}
	now := time.Now().UTC()
	u, err := upgrade.Create(r.Context(), c.Client, "u"+now.Format("20060102-150405"), req, now)
	switch {
	case errors.Is(err, upgrade.ErrRunning), errors.Is(err, store.ErrConflict):
		return conflict("%v", err)
	case err != nil:
		return err
	}
	c.Log.Info("upgrade recorded", "upgrade", u.ID, "sha256", u.SHA256, "version", u.Version, "steps", len(u.Steps))
	writeJSON(w, http.StatusCreated, u)
	return nil
}

// storeHealthy refuses an upgrade while etcd is not whole: taking a
// server down with a member missing would lose the quorum.
func (c *Controller) storeHealthy(r *http.Request) error {
	st := c.storeStatus(r.Context())
	if st.Leader == "" {
		return api.Errorf(api.ErrCodeUnavailable, "the store has no leader: no upgrade now")
	}
	for _, m := range st.Members {
		if !m.Reachable {
			return conflict("etcd member %s does not answer (%s): an upgrade would take the store below its quorum", m.Name, m.Error)
		}
	}
	if len(st.Alarms) > 0 {
		return conflict("the store has alarms %v: clear them first", st.Alarms)
	}
	return nil
}

func (c *Controller) listUpgrades(w http.ResponseWriter, r *http.Request) error {
	ups, _, err := store.List[api.Upgrade](r.Context(), c.Client, store.UpgradesPrefix)
	if err != nil {
		return err
	}
	out := make([]api.Upgrade, 0, len(ups))
	for _, it := range ups {
		out = append(out, it.Value)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.After(out[j].CreatedAt) })
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (c *Controller) getUpgrade(w http.ResponseWriter, r *http.Request) error {
	key, err := store.Key(store.UpgradesPrefix, r.PathValue("id"))
	if err != nil {
		return notFound("no upgrade %q", r.PathValue("id"))
	}
	u, _, err := store.Get[api.Upgrade](r.Context(), c.Client, key)
	if errors.Is(err, store.ErrNotFound) {
		return notFound("no upgrade %q", r.PathValue("id"))
	} else if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, u)
	return nil
}

func (c *Controller) listNodes(w http.ResponseWriter, r *http.Request) error {
	nodes, _, err := store.List[api.Node](r.Context(), c.Client, store.NodesPrefix)
	if err != nil {
		return err
	}
	out := make([]api.Node, 0, len(nodes))
	for _, it := range nodes {
		out = append(out, it.Value)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// upgradeBlobs are the binaries of upgrades, which garbage collection
// keeps: a node rolled back later may need one again, and a node that
// joins during an upgrade fetches it.
func upgradeBlobs(ups []store.Item[api.Upgrade]) []string {
	var out []string
	for _, it := range ups {
		out = append(out, it.Value.SHA256)
	}
	return out
}
