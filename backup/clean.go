package backup

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/blobstore/replica"
	"github.com/pierpaas/pier/controller/deployer"
	"github.com/pierpaas/pier/router"
	"github.com/pierpaas/pier/scheduler"
	"github.com/pierpaas/pier/store"
)

// oldMachines are the prefixes of state that described the backed-up
// cluster's machines and what ran on them: restored, it would make the
// scheduler wait on hosts that never come back, route to addresses
// that are gone and trust leaders that are not there. The formations
// stay, so the scheduler places every process again on the new hosts.
var oldMachines = []string{
	store.HostsPrefix,
	store.JobsPrefix,
	store.JobStatusPrefix,
	store.ServicesPrefix,
	store.HostDrainsPrefix,
	store.VolumeStatusPrefix,
	store.BuildSecretsPrefix,
	scheduler.FormationStatusPrefix,
	scheduler.OneOffPrefix,
	scheduler.OneOffStatusPrefix,
	scheduler.ElectionPrefix,
	deployer.ElectionPrefix,
	"/pier/leaders/", // every other election
	router.ACMELocksPrefix,
}

// Options say where a restored cluster lives.
type Options struct {
	// OldDomain is the backed-up cluster's domain and NewDomain the new
	// one's: http routes under the old move under the new. Either empty,
	// or both equal: routes stay as they are.
	OldDomain, NewDomain string
	// BlobURL is the base URL of the restoring server's API
	// ("https://10.0.0.2:7300"): release artifacts are fetched from
	// there, no longer from the old server.
	BlobURL string
}

// Summary counts what Clean did.
type Summary struct {
	Kept, Dropped, RoutesMoved, ArtifactsMoved, VolumesUnbound int
	// AttachmentsRemade counts resources' attachments whose role and
	// database the new member must make again.
	AttachmentsRemade int
}

// KV is a key and value to load.
type KV struct {
	Key   string
	Value []byte
}

// Clean turns a snapshot's keys into those a fresh cluster loads. Keys
// bound to a lease go (the lease does not exist there, and every such key
// is presence: a host, an instance, a leader), as does everything under
// oldMachines; volumes forget their host (its disk is gone; the data is
// not in a backup); releases fetch their artifact from opts.BlobURL;
// routes and their index move to the new domain.
func Clean(kvs []store.SnapshotKV, opts Options) ([]KV, Summary, error) {
	var out []KV
	var sum Summary
	move := opts.OldDomain != "" && opts.NewDomain != "" && opts.OldDomain != opts.NewDomain
	for _, kv := range kvs {
		if kv.Lease != 0 || !strings.HasPrefix(kv.Key, store.Root) || dropped(kv.Key) {
			sum.Dropped++
			continue
		}
		key, val := kv.Key, kv.Value
		var err error
		switch {
		case strings.HasPrefix(key, store.VolumesPrefix):
			val, err = rewrite(key, val, func(v *api.Volume) bool {
				if v.Host == "" {
					return false
				}
				v.Host = ""
				sum.VolumesUnbound++
				return true
			})
		case strings.HasPrefix(key, store.ResourcesPrefix):
			// The member starts on an empty volume: the apps' roles and
			// databases are made again by the resource loop, as for a
			// new attachment (with the password the secret keeps), and
			// the apps released with the URL; the data comes back with
			// a database backup (pg:backups:restore).
			val, err = rewrite(key, val, func(r *api.Resource) bool {
				changed := false
				for i := range r.Attachments {
					a := &r.Attachments[i]
					switch a.State {
					case api.AttachmentAttached, api.AttachmentRotating:
						a.State, a.Login = api.AttachmentPending, ""
						sum.AttachmentsRemade++
						changed = true
					}
				}
				return changed
			})
		case strings.HasPrefix(key, store.ReleasesPrefix) && opts.BlobURL != "":
			val, err = rewrite(key, val, func(r *api.Release) bool {
				if r.Artifact == nil || !strings.Contains(r.Artifact.URI, replica.Path) {
					return false
				}
				r.Artifact.URI = strings.TrimSuffix(opts.BlobURL, "/") + replica.Path + r.Artifact.SHA256
				sum.ArtifactsMoved++
				return true
			})
		case strings.HasPrefix(key, store.RoutesPrefix) && move:
			val, err = rewrite(key, val, func(r *api.Route) bool {
				d, ok := moveDomain(r.Domain, opts.OldDomain, opts.NewDomain)
				if r.Type != api.RouteHTTP || !ok {
					return false
				}
				r.Domain = d
				sum.RoutesMoved++
				return true
			})
		case strings.HasPrefix(key, store.RouteIndexPrefix+"http/") && move:
			// http/<domain><path>: the domain ends at the path's '/'.
			rest := strings.TrimPrefix(key, store.RouteIndexPrefix+"http/")
			domain, path := rest, ""
			if i := strings.IndexByte(rest, '/'); i >= 0 {
				domain, path = rest[:i], rest[i:]
			}
			if d, ok := moveDomain(domain, opts.OldDomain, opts.NewDomain); ok {
				key = store.RouteIndexPrefix + "http/" + d + path
			}
		}
		if err != nil {
			return nil, sum, err
		}
		out = append(out, KV{Key: key, Value: val})
		sum.Kept++
	}
	return out, sum, nil
}

func dropped(key string) bool {
	for _, p := range oldMachines {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	return false
}

// moveDomain is d under newDomain if it is oldDomain or under it
// ("www.shop.old.example" to "www.shop.new.example").
func moveDomain(d, oldDomain, newDomain string) (string, bool) {
	if d == oldDomain {
		return newDomain, true
	}
	if head, ok := strings.CutSuffix(d, "."+oldDomain); ok {
		return head + "." + newDomain, true
	}
	return d, false
}

// rewrite decodes a JSON value, lets change edit it, and encodes it
// again only if change did something: other values stay byte for byte.
func rewrite[T any](key string, val []byte, change func(*T) bool) ([]byte, error) {
	var v T
	if err := json.Unmarshal(val, &v); err != nil {
		return nil, fmt.Errorf("backup: %s: %w", key, err)
	}
	if !change(&v) {
		return val, nil
	}
	return json.Marshal(v)
}
