package controller_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/store"
)

// GET /v1/volumes lists volumes with their state and users; DELETE
// refuses a volume in use (409) or unknown (404), removes an unbound one
// at once and leaves a bound one to its host's agent.
func TestVolumesListAndDelete(t *testing.T) {
	e := newEnv(t)
	c := ctx(t)
	put := func(key string, v any) {
		t.Helper()
		if _, err := store.Put(c, e.tc.Client, key, v); err != nil {
			t.Fatal(err)
		}
	}
	pg := api.Volume{ID: api.VolumeID("db", "pg", "data"), App: "db", ProcessType: "pg", Name: "data", Host: "h1", SizeMB: 64, CreatedAt: time.Now()}
	spare := api.Volume{ID: api.VolumeID("other", "web", "cache"), App: "other", ProcessType: "web", Name: "cache", SizeMB: 8, CreatedAt: time.Now()}
	put(store.VolumesPrefix+pg.ID, pg)
	put(store.VolumesPrefix+spare.ID, spare)
	put(store.VolumeStatusPrefix+pg.ID, api.VolumeStatus{ID: pg.ID, Host: "h1", State: api.VolumeReady})
	// A job of another scheduler, on a host that runs nothing, uses pg.
	job := api.Job{ID: "db-pg-1", HostID: "h9", App: "db", ProcessType: "pg", Args: []string{"postgres"}, Desired: api.DesiredRunning,
		Scheduler: "test", Volumes: []api.JobVolume{{ID: pg.ID, VolumeSpec: api.VolumeSpec{Name: "data", Path: "/data", SizeMB: 64}}}}
	put(store.JobsPrefix+"h9/"+job.ID, job)

	var vols []api.VolumeInfo
	waitFor(t, "the job to show as the volume's user", func() bool {
		var err error
		vols, err = e.cli.Volumes(c, "")
		return err == nil && len(vols) == 2 && len(vols[0].Jobs) == 1
	})
	if v := vols[0]; v.ID != pg.ID || v.State != "ready" || v.Host != "h1" || v.Jobs[0] != job.ID || v.Status == nil {
		t.Errorf("db volume %+v", v)
	}
	if v := vols[1]; v.ID != spare.ID || v.State != "unbound" || len(v.Jobs) != 0 {
		t.Errorf("other volume %+v", v)
	}
	if vols, err := e.cli.Volumes(c, "other"); err != nil || len(vols) != 1 || vols[0].ID != spare.ID {
		t.Errorf("?app=other: %+v %v", vols, err)
	}
	if vols, err := e.cli.Volumes(c, "nobody"); err != nil || len(vols) != 0 {
		t.Errorf("?app=nobody: %+v %v", vols, err)
	}
	if _, err := e.cli.Volumes(c, "Bad_Name"); !isCode(err, api.ErrCodeInvalid) {
		t.Errorf("?app=Bad_Name: %v", err)
	}

	if _, err := e.cli.RemoveVolume(c, "nope-0000000000"); !isCode(err, api.ErrCodeNotFound) {
		t.Errorf("unknown volume: %v", err)
	}
	if _, err := e.cli.RemoveVolume(c, pg.ID); !isCode(err, api.ErrCodeConflict) {
		t.Fatalf("volume in use: %v", err)
	}
	if v, _, err := store.Get[api.Volume](c, e.tc.Client, store.VolumesPrefix+pg.ID); err != nil || !v.DeleteRequestedAt.IsZero() {
		t.Fatalf("a refused removal changed the record: %+v %v", v, err)
	}

	// Unbound: gone at once.
	if v, err := e.cli.RemoveVolume(c, spare.ID); err != nil || v.State != "removed" {
		t.Fatalf("remove unbound: %+v %v", v, err)
	}
	if _, err := e.cli.RemoveVolume(c, spare.ID); !isCode(err, api.ErrCodeNotFound) {
		t.Errorf("second remove: %v", err)
	}

	// Once the job ended, h1's agent removes the volume, then its record.
	put(store.JobStatusPrefix+job.ID, api.JobStatus{ID: job.ID, HostID: "h9", State: api.JobFailed})
	v, err := e.cli.RemoveVolume(c, pg.ID)
	if err != nil || v.State != "removing" || v.DeleteRequestedAt.IsZero() {
		t.Fatalf("remove: %+v %v", v, err)
	}
	waitFor(t, "h1 to remove the volume", func() bool {
		vols, err := e.cli.Volumes(context.Background(), "db")
		return err == nil && len(vols) == 0
	})
	if _, _, err := store.Get[api.VolumeStatus](c, e.tc.Client, store.VolumeStatusPrefix+pg.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("status left: %v", err)
	}
}

func isCode(err error, code string) bool {
	var ae *api.Error
	return errors.As(err, &ae) && ae.Code == code
}

// A release whose volumes are bad is refused with the reason, and makes
// no release.
func TestVolumesBadRelease(t *testing.T) {
	e := newEnv(t)
	c := ctx(t)
	if _, err := e.cli.CreateApp(c, api.CreateAppRequest{Name: "db"}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		vols []api.VolumeSpec
		want string
	}{
		{[]api.VolumeSpec{{Name: "Data", Path: "/data", SizeMB: 10}}, `volume name "Data" must be a DNS label`},
		{[]api.VolumeSpec{{Name: "data", Path: "/proc/x", SizeMB: 10}}, "under the system directory /proc"},
		{[]api.VolumeSpec{{Name: "data", Path: "/data", SizeMB: 0}}, "size must be positive"},
		{[]api.VolumeSpec{{Name: "data", Path: "/a", SizeMB: 1}, {Name: "data", Path: "/b", SizeMB: 1}}, "declared twice"},
	} {
		_, err := e.cli.CreateRelease(c, "db", api.CreateReleaseRequest{Artifact: &api.Artifact{SHA256: e.slug("x")},
			Processes: map[string]api.ProcessType{"pg": {Args: []string{"postgres"}, Volumes: tc.vols}}})
		var ae *api.Error
		if !errors.As(err, &ae) || ae.Code != api.ErrCodeInvalid || !strings.Contains(ae.Message, tc.want) {
			t.Errorf("volumes %+v: %v, want %q", tc.vols, err, tc.want)
		}
	}
	if rels, err := e.cli.Releases(c, "db"); err != nil || len(rels) != 0 {
		t.Errorf("releases %+v %v", rels, err)
	}
}
