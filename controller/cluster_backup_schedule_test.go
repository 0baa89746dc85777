package controller_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/backup"
	"github.com/pierpaas/pier/controller"
	"github.com/pierpaas/pier/internal/testcluster"
	"github.com/pierpaas/pier/store"
)

// fakeClock is the backup schedules' clock, moved by the test.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// TestClusterBackupSchedule: a schedule fires at once and then each
// time its interval has passed on the (injected) clock, writes files
// that verify, keeps the newest N and leaves other files alone; a
// schedule that cannot write says why; a removed schedule's record goes;
// and a controller that takes over after the first stops neither
// repeats nor skips a backup.
func TestClusterBackupSchedule(t *testing.T) {
	t0 := time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)
	clock := &fakeClock{now: t0}
	caDir := t.TempDir()
	var cfg controller.Config
	e := newEnvWith(t, func(tc *testcluster.Cluster, c *controller.Config) {
		if err := tc.Etcd.CA.Save(caDir); err != nil {
			t.Fatal(err)
		}
		c.CADir, c.Now, c.ServerName = caDir, clock.Now, "s1"
		cfg = *c
	})
	ctx := ctx(t)
	if _, err := e.cli.CreateApp(ctx, api.CreateAppRequest{Name: "web"}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	// Files that are not the schedule's stay whatever it keeps.
	others := []string{"notes.txt", backup.FileName("other", t0.Add(-48*time.Hour)), backup.FileName("nightly-2", t0.Add(-48*time.Hour))}
	for _, name := range others {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("keep me"), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	// Bad requests are refused.
	for _, req := range []api.ClusterBackupScheduleRequest{
		{Every: api.Duration(time.Hour), Dir: "backups"},
		{Every: api.Duration(10 * time.Second), Dir: dir},
		{Dir: dir},
		{Every: api.Duration(time.Hour), At: "02:00", Dir: dir},
		{At: "2am", Dir: dir},
		{Every: api.Duration(time.Hour), Dir: dir, Keep: -1},
	} {
		_, err := e.cli.ScheduleClusterBackups(ctx, "nightly", req)
		wantCode(t, err, api.ErrCodeInvalid, 422)
	}

	s, err := e.cli.ScheduleClusterBackups(ctx, "nightly", api.ClusterBackupScheduleRequest{Every: api.Duration(time.Hour), Dir: dir, Keep: 2})
	if err != nil {
		t.Fatal(err)
	}
	if s.Keep != 2 || time.Duration(s.Every) != time.Hour || !s.CreatedAt.Equal(t0) {
		t.Fatalf("schedule = %+v", s)
	}
	status := func(name string) api.ClusterBackupStatus {
		t.Helper()
		ss, err := e.cli.ClusterBackupSchedules(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range ss {
			if s.Name == name {
				return *s.Status
			}
		}
		t.Fatalf("no schedule %s in %+v", name, ss)
		return api.ClusterBackupStatus{}
	}
	// statusInStore reads the loop's record without the API (whose
	// controller is stopped below).
	statusInStore := func(name string) api.ClusterBackupStatus {
		st, _, err := store.Get[api.ClusterBackupStatus](ctx, e.tc.Client, store.ClusterBackupStatusPrefix+name)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			t.Fatal(err)
		}
		return st
	}
	made := func(n int, at time.Time) {
		t.Helper()
		waitFor(t, "backup "+at.String(), func() bool { st := statusInStore("nightly"); return st.Made >= n })
		st := statusInStore("nightly")
		if st.Made != n || !st.LastSuccess.Equal(at) || st.LastError != "" {
			t.Fatalf("after backup %d: %+v", n, st)
		}
	}

	// The first backup at once, verified, with the app in its snapshot.
	made(1, t0)
	st := status("nightly")
	if !st.Next.Equal(t0.Add(time.Hour)) || len(st.Files) != 1 || st.Files[0].Server != "s1" {
		t.Fatalf("status after the first backup: %+v", st)
	}
	first := filepath.Join(dir, backup.FileName("nightly", t0))
	if st.Files[0].Path != first {
		t.Fatalf("file %s, want %s", st.Files[0].Path, first)
	}
	verifyFile(t, first)

	// One more an hour later; then a third, and the first goes.
	clock.Add(time.Hour)
	made(2, t0.Add(time.Hour))
	clock.Add(time.Hour)
	made(3, t0.Add(2*time.Hour))
	files, err := backup.ListDir(dir, "nightly")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 || !files[0].CreatedAt.Equal(t0.Add(2*time.Hour)) || !files[1].CreatedAt.Equal(t0.Add(time.Hour)) {
		t.Fatalf("kept %+v, want the backups of t0+2h and t0+1h", files)
	}
	for _, f := range files {
		verifyFile(t, f.Path)
	}
	for _, name := range others {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Fatalf("%s, not the schedule's, is gone: %v", name, err)
		}
	}
	if st := status("nightly"); len(st.Files) != 2 || st.Files[0].Path != files[0].Path {
		t.Fatalf("the status lists %+v", st.Files)
	}

	// A schedule that cannot write says why, and waits before trying
	// again.
	blocked := filepath.Join(dir, "notes.txt", "sub")
	if _, err := e.cli.ScheduleClusterBackups(ctx, "broken", api.ClusterBackupScheduleRequest{Every: api.Duration(time.Hour), Dir: blocked}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the broken schedule's failure", func() bool { return statusInStore("broken").Failed > 0 })
	bst := status("broken")
	if bst.LastError == "" || bst.Made != 0 || !bst.Next.Equal(clock.Now().Add(5*time.Minute)) {
		t.Fatalf("broken schedule: %+v", bst)
	}
	// Removed, it is listed no more and its record goes.
	if err := e.cli.RemoveClusterBackupSchedule(ctx, "broken"); err != nil {
		t.Fatal(err)
	}
	wantCode(t, e.cli.RemoveClusterBackupSchedule(ctx, "broken"), api.ErrCodeNotFound, 404)
	waitFor(t, "the removed schedule's record to go", func() bool {
		resp, err := e.tc.Client.Get(ctx, store.ClusterBackupStatusPrefix+"broken")
		return err == nil && len(resp.Kvs) == 0
	})
	if ss, err := e.cli.ClusterBackupSchedules(ctx); err != nil || len(ss) != 1 || ss[0].Name != "nightly" {
		t.Fatalf("schedules after removal: %+v, %v", ss, err)
	}

	// Another server takes over: it makes the next backup when due, no
	// sooner and not twice.
	e.stopCtl()
	cfg.ServerName = "s2"
	ctl2 := controller.New(cfg)
	ctx2, stop2 := context.WithCancel(context.Background())
	t.Cleanup(stop2)
	go ctl2.Run(ctx2)
	clock.Add(time.Hour)
	made(4, t0.Add(3*time.Hour))
	st = statusInStore("nightly")
	if len(st.Files) != 2 || st.Files[0].Server != "s2" || st.Files[1].Server != "s1" {
		t.Fatalf("files after the takeover: %+v", st.Files)
	}
}

func verifyFile(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := backup.Verify(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if !m.Has(backup.SnapshotEntry) || !m.Has(backup.CAKeyEntry) {
		t.Fatalf("%s holds %+v", path, m.Entries)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s: mode %v, %v", path, fi.Mode(), err)
	}
}
