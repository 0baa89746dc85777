package agent

import (
	"path/filepath"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/host/artifact"
	"github.com/pierpaas/pier/host/shim"
	"github.com/pierpaas/pier/runtime"
)

// Each app's jobs run under a uid, and gid, of their own (api.AppUID
// explains the mapping), so that one app's processes cannot touch
// another's files or processes through the kernel's uid checks. Jobs of
// no app (`pier host run`) run as the runtime's default user, uid 1000,
// which no app has. What a job may write follows its uid: its copy of
// the artifact (artifact.Cache.FetchAs, a copy per uid, read-only but for
// a writable job's own overlay), its volumes (made for that uid, and a
// volume made under another uid, as every volume was before apps had
// uids of their own, is given to the new one once: volume.Manager.Ensure),
// and the build cache, which a build restores inside its job.

// jobUser is the uid and gid job runs as.
func jobUser(job *api.Job) (uid, gid int) {
	if job.App == "" {
		return runtime.AppUID, runtime.AppGID
	}
	uid = api.AppUID(job.App)
	return uid, uid
}

// artifactOwner is who owns the copy of the artifact a job of uid:gid
// runs from: that user when the agent can give files away (it runs as
// root), else nobody in particular (the agent's own user, and the
// process runtime, which confines nothing).
func (a *Agent) artifactOwner(uid, gid int) *artifact.Owner {
	if a.artifacts.Limits.Owner == nil {
		return nil
	}
	return &artifact.Owner{UID: uid, GID: gid}
}

// artifactEntries names the cache entries a local job uses: the copy for
// its uid, and the copy its shim was given if that is another, as it is
// for a job launched by an agent from before apps had uids of their own
// and adopted since: it runs on as uid 1000 from the default owner's copy.
func (a *Agent) artifactEntries(lj *localJob) []string {
	art := lj.Job.Artifact
	if art == nil {
		return nil
	}
	names := []string{a.artifacts.EntryName(art.SHA256, a.artifactOwner(jobUser(&lj.Job)))}
	if cfg, err := shim.ReadConfig(lj.Dir); err == nil && cfg.Spec.AppDir != "" &&
		filepath.Dir(cfg.Spec.AppDir) == filepath.Clean(a.artifacts.Dir) {
		if name := filepath.Base(cfg.Spec.AppDir); name != names[0] {
			names = append(names, name)
		}
	}
	return names
}
