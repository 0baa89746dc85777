package agent

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/host/artifact"
	"github.com/pierpaas/pier/host/shim"
	"github.com/pierpaas/pier/runtime"
	"github.com/pierpaas/pier/store/storetest"
)

// testSlug writes a slug holding a Procfile and returns it as an artifact.
func testSlug(t *testing.T) *api.Artifact {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	body := []byte("web: ./web\n")
	for _, h := range []*tar.Header{
		{Name: "./", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "./Procfile", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body))},
	} {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write(body)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "slug.tgz")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(buf.Bytes())
	return &api.Artifact{Type: "slug", URI: "file://" + p, SHA256: hex.EncodeToString(sum[:]), Size: int64(buf.Len())}
}

func fileOwner(t *testing.T, p string) int {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	return int(st.Uid)
}

// TestAppUIDs: two apps' jobs on one host run as two different uids,
// each its app's api.AppUID, from a copy of their artifact that uid owns
// and cannot write; a job of no app runs as uid 1000. A volume made by
// a job of uid 1000 (as every volume was before apps had uids of their
// own) follows its app's uid when that app's job next mounts it.
func TestAppUIDs(t *testing.T) {
	c := storetest.NewCluster(t, 1)
	cfg := volumeHost(t, c, "h1")
	a := startAgent(t, cfg)
	slug := testSlug(t)
	data := api.JobVolume{ID: "data-5e6f", VolumeSpec: api.VolumeSpec{Name: "data", Path: "/data", SizeMB: 16}}

	// Before: the volume is made, and written, as uid 1000.
	st, out := runToEnd(t, c, a, "legacy", `id -u; mkdir /data/db && echo old > /data/db/rows && echo wrote`, data)
	if st.State != api.JobComplete || out != "1000\nwrote\n" {
		t.Fatalf("job of no app %+v, output %q", st, out)
	}

	run := func(id, app, script string, vols ...api.JobVolume) string {
		t.Helper()
		putJob(t, c, api.Job{ID: id, HostID: "h1", App: app, Artifact: slug, Volumes: vols,
			Args: []string{"sh", "-c", script}, Resources: api.Resources{MemoryMB: 64}})
		st := waitStatus(t, c, id, func(s api.JobStatus) bool { return s.State.Terminal() })
		out := jobLog(a, id)
		if st.State != api.JobComplete {
			t.Fatalf("job %s of %s %+v, output:\n%s", id, app, st, out)
		}
		return out
	}
	script := `id -u; id -g; id -un; stat -c '%u' /app/Procfile; touch /app/x 2>/dev/null && echo app writable || echo app read-only`
	uids := map[string]int{}
	for _, app := range []string{"alpha", "beta"} {
		uid := api.AppUID(app)
		uids[app] = uid
		u := strconv.Itoa(uid)
		if out := run(app+"-1", app, script); out != u+"\n"+u+"\napp\n"+u+"\napp read-only\n" {
			t.Errorf("%s's job output %q, want uid and gid %s, named app, owning /app, read-only", app, out, u)
		}
		dir := filepath.Join(cfg.artifactDir(), slug.SHA256+"-"+u+"-"+u)
		if got := fileOwner(t, filepath.Join(dir, "Procfile")); got != uid {
			t.Errorf("%s's artifact copy is owned by %d, want %d", app, got, uid)
		}
	}
	if uids["alpha"] == uids["beta"] || uids["alpha"] == runtime.AppUID {
		t.Fatalf("apps share a uid: %v", uids)
	}

	// The volume follows alpha's uid: its old data is alpha's, readable
	// and writable, on the host too.
	ua := strconv.Itoa(uids["alpha"])
	out = run("alpha-2", "alpha", `stat -c '%u %g' /data /data/db /data/db/rows; cat /data/db/rows; echo new >> /data/db/rows && echo appended`, data)
	if want := strings.Repeat(ua+" "+ua+"\n", 3) + "old\nappended\n"; out != want {
		t.Errorf("volume after the uid change: output %q, want %q", out, want)
	}
	mnt := a.volumes.MountPath(data.ID)
	if got := fileOwner(t, filepath.Join(mnt, "db", "rows")); got != uids["alpha"] {
		t.Errorf("on the host the volume's file is owned by %d, want %d", got, uids["alpha"])
	}
}

// TestArtifactEntriesKeepsAdoptedCopy: the garbage collector keeps both
// the copy of a job's artifact for its app's uid and, for a job launched
// before apps had uids of their own and adopted since, the default copy
// its shim runs from.
func TestArtifactEntriesKeepsAdoptedCopy(t *testing.T) {
	dir := t.TempDir()
	a := &Agent{artifacts: &artifact.Cache{Dir: filepath.Join(dir, "artifacts"),
		Limits: artifact.Limits{Owner: &artifact.Owner{UID: runtime.AppUID, GID: runtime.AppGID}}}}
	digest := strings.Repeat("ab", 32)
	uid := strconv.Itoa(api.AppUID("web"))
	job := api.Job{ID: "j1", App: "web", Artifact: &api.Artifact{Type: "slug", URI: "file:///x", SHA256: digest}}

	lj := &localJob{Job: job, Dir: filepath.Join(dir, "jobs", "j1")}
	if err := os.MkdirAll(lj.Dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(a.artifactEntries(lj), ","); got != digest+"-"+uid+"-"+uid {
		t.Errorf("entries of a job not launched yet: %s", got)
	}
	spec := runtime.Spec{ID: "j1", Args: []string{"x"}, AppDir: filepath.Join(a.artifacts.Dir, digest)}
	if err := shim.WriteConfig(lj.Dir, &shim.Config{Runtime: "runc", Spec: spec}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(a.artifactEntries(lj), ","); got != digest+"-"+uid+"-"+uid+","+digest {
		t.Errorf("entries of an adopted job of uid 1000: %s", got)
	}
	noApp := &localJob{Job: api.Job{ID: "j2", Artifact: job.Artifact}, Dir: filepath.Join(dir, "jobs", "j2")}
	if got := strings.Join(a.artifactEntries(noApp), ","); got != digest {
		t.Errorf("entries of a job of no app: %s", got)
	}
	if u, g := jobUser(&api.Job{}); u != runtime.AppUID || g != runtime.AppGID {
		t.Errorf("job of no app runs as %d:%d", u, g)
	}
	if u, g := jobUser(&job); u != api.AppUID("web") || g != u {
		t.Errorf("web's job runs as %d:%d", u, g)
	}
}
