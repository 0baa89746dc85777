package scheduler

import (
	"time"

	"github.com/pierpaas/pier/api"
)

// Volumes tie jobs to hosts. A process type's volume is one record per
// (app, process type, name), api.VolumeID: every job of the type, in any
// release, mounts it, so they all go where it lives. The first job placed
// binds it: the record is created (or, made ahead of time without a host,
// updated) with the job's host in the job's own transaction, so a volume
// is never bound to a host that took no job, nor a job started on a host
// other than its volume's. Once bound a volume never moves; if its host
// is gone the jobs wait, pending, until it comes back or someone removes
// the volume.

// VolumeHost keeps a job on the host that holds its volumes (Request.Host).
type VolumeHost struct{}

func (VolumeHost) Check(h *HostState, r *Request, _ *GroupState) (bool, string) {
	if r.Host != "" && h.Host.ID != r.Host {
		return false, r.hostReason
	}
	return true, ""
}

// Pin restricts the request to one host, the holder of volume name.
func (r *Request) Pin(host, volume string) {
	r.Host, r.hostReason = host, "lacked volume "+volume
}

// VolumeBind is a volume record to write with a start: the volume bound
// to the start's host. Rev guards it: 0 creates the record, which must
// then be absent.
type VolumeBind struct {
	Volume api.Volume
	Rev    int64
}

// volState is a volume as this plan sees it: its record, if any, and its
// host, from the record or from a start of this plan that binds it.
type volState struct {
	view *VolumeView
	host string
}

// vol returns the state of volume id, indexing the snapshot's volumes on
// first use.
func (pl *planner) vol(id string) *volState {
	if pl.vols == nil {
		pl.vols = make(map[string]*volState, len(pl.s.Volumes))
		for i := range pl.s.Volumes {
			vv := &pl.s.Volumes[i]
			pl.vols[vv.Volume.ID] = &volState{view: vv, host: vv.Volume.Host}
		}
	}
	vs := pl.vols[id]
	if vs == nil {
		vs = &volState{}
		pl.vols[id] = vs
	}
	return vs
}

// volumeHost says where a group's jobs must go: host is the host of its
// bound volumes ("" when none is bound yet) and name the first bound
// volume's name; why, when set, is why none of them can start.
func (pl *planner) volumeHost(g *group) (host, name, why string) {
	for _, v := range g.pt.Volumes {
		id := api.VolumeID(g.key.app, g.key.ptype, v.Name)
		vs := pl.vol(id)
		if vv := vs.view; vv != nil {
			rec := &vv.Volume
			switch {
			case rec.App != g.key.app || rec.ProcessType != g.key.ptype || rec.Name != v.Name:
				return "", "", "volume id " + id + " belongs to another volume"
			case !rec.DeleteRequestedAt.IsZero():
				return "", "", "volume " + v.Name + " is being removed"
			}
		}
		switch {
		case vs.host == "":
		case host == "":
			host, name = vs.host, v.Name
		case vs.host != host:
			return "", "", "volumes " + name + " and " + v.Name + " live on different hosts (" + host + ", " + vs.host + ")"
		}
	}
	if _, present := pl.hostIdx[host]; host != "" && !present {
		return host, name, "volume " + name + " lives on host " + host + ", which is gone"
	}
	return host, name, ""
}

// placeWithVolumes places the ready slots of a group that has volumes:
// all on the volumes' host, or, while none is bound, one job wherever the
// pipeline says and the rest beside it.
func (pl *planner) placeWithVolumes(g *group, ready []slot) {
	host, name, why := pl.volumeHost(g)
	if why != "" {
		pl.addPending(g, len(ready), why, time.Time{})
		return
	}
	tk := tkey{g.key.app, g.key.ptype}
	place := func(slots []slot) {
		c := Counts{SameType: pl.typeHosts[tk], SameFormation: g.formHosts}
		chosen, why := pl.placer.Place(g.req, c, len(slots), pl.rng.Uint64())
		for k, i := range chosen {
			pl.start(g, slots[k], int(i))
			if k == 0 {
				pl.bindVolumes(g, int(i))
			}
		}
		if n := len(slots) - len(chosen); n > 0 {
			pl.addPending(g, n, why, time.Time{})
		}
	}
	if host != "" {
		g.req.Pin(host, name)
		place(ready)
		return
	}
	place(ready[:1])
	if len(ready) == 1 {
		return
	}
	if host, name, _ = pl.volumeHost(g); host == "" {
		pl.addPending(g, len(ready)-1, "waiting for the first job to bind the volumes", time.Time{})
		return
	}
	g.req.Pin(host, name)
	place(ready[1:])
}

// bindVolumes binds the group's unbound volumes to host i, in the start
// just made there, and records them as bound for the rest of the plan.
func (pl *planner) bindVolumes(g *group, i int) {
	st := &pl.plan.Start[len(pl.plan.Start)-1]
	hostID := pl.placer.Hosts[i].Host.ID
	for _, v := range g.pt.Volumes {
		id := api.VolumeID(g.key.app, g.key.ptype, v.Name)
		vs := pl.vol(id)
		if vs.host != "" {
			continue
		}
		b := VolumeBind{Volume: api.Volume{ID: id, App: g.key.app, ProcessType: g.key.ptype, Name: v.Name,
			SizeMB: v.SizeMB, CreatedAt: pl.s.Now}}
		if vv := vs.view; vv != nil {
			b.Volume, b.Rev = vv.Volume, vv.Rev
		}
		b.Volume.Host = hostID
		st.Volumes = append(st.Volumes, b)
		vs.host = hostID
	}
}

// jobVolumes are the volumes a new job of g carries: the process type's
// declarations with the volumes' ids, and each existing volume's own size,
// which a later release does not change.
func (pl *planner) jobVolumes(g *group) []api.JobVolume {
	if len(g.pt.Volumes) == 0 {
		return nil
	}
	out := make([]api.JobVolume, len(g.pt.Volumes))
	for k, v := range g.pt.Volumes {
		id := api.VolumeID(g.key.app, g.key.ptype, v.Name)
		out[k] = api.JobVolume{ID: id, VolumeSpec: v}
		if vv := pl.vol(id).view; vv != nil && vv.Volume.SizeMB > 0 {
			out[k].SizeMB = vv.Volume.SizeMB
		}
	}
	return out
}
