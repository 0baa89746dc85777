package cli_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/backup"
)

// TestClusterBackupScheduleUp: on a real pier up, a schedule of cluster
// backups makes its first backup at once into its directory, a file
// that restore --check accepts; it is listed with its outcome, survives
// a kill -9 of pier up, and once unscheduled is listed no more while
// its files stay.
func TestClusterBackupScheduleUp(t *testing.T) {
	tmp := t.TempDir()
	dataDir := filepath.Join(tmp, "data")
	ports := freeUpPorts(t)
	p := startUp(t, dataDir, ports)
	u := cliUser{t, p}
	u.must("create", "alpha")

	dir := filepath.Join(tmp, "backups")
	u.fails("go with --schedule", "cluster", "backup", "--every", "1h", "--to", dir)
	u.fails("absolute path", "cluster", "backup", "--schedule", "--every", "1h", "--to", "relative/dir")
	if out := u.must("cluster", "backup", "--schedule", "--name", "hourly", "--every", "1h", "--to", dir, "--keep", "3"); !strings.Contains(out, `"hourly": every 1h0m0s into `+dir+`, keeping 3`) {
		t.Fatalf("schedule: %q", out)
	}
	var file string
	waitUntil(t, "the first scheduled backup", 60*time.Second, func() bool {
		files, _ := backup.ListDir(dir, "hourly")
		if len(files) > 0 {
			file = files[0].Path
		}
		return file != ""
	})
	if out := u.must("cluster", "restore", "--check", file); !strings.Contains(out, "checksums: all") {
		t.Fatalf("restore --check of the scheduled backup: %q", out)
	}
	schedules := func(u cliUser) []api.ClusterBackupSchedule {
		var ss []api.ClusterBackupSchedule
		if err := json.Unmarshal([]byte(u.must("cluster", "backup", "schedules", "--json")), &ss); err != nil {
			t.Fatal(err)
		}
		return ss
	}
	var ss []api.ClusterBackupSchedule
	waitUntil(t, "the backup in the schedule's record", 30*time.Second, func() bool {
		ss = schedules(u)
		return len(ss) == 1 && ss[0].Status != nil && ss[0].Status.Made == 1
	})
	st := ss[0].Status
	if len(st.Files) != 1 || st.Files[0].Path != file || st.LastError != "" || !st.Next.Equal(st.LastSuccess.Add(time.Hour)) {
		t.Fatalf("status: %+v", st)
	}
	if out := u.must("cluster", "backup", "schedules"); !strings.Contains(out, "hourly") || !strings.Contains(out, "every 1h0m0s") || !strings.Contains(out, "ok ") {
		t.Fatalf("schedules:\n%s", out)
	}

	// kill -9 and start again: the schedule and what it did are still
	// there, and the next backup is still due an hour after the first.
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
	p = startUp(t, dataDir, ports)
	u = cliUser{t, p}
	after := schedules(u)
	if len(after) != 1 || after[0].Status == nil || !after[0].Status.LastSuccess.Equal(st.LastSuccess) || !after[0].Status.Next.Equal(st.Next) {
		t.Fatalf("after the restart: %+v, before %+v", after, st)
	}

	// pier status shows the host's lease, disk and memory, and the
	// router of pier up, ready.
	out, errOut, code := u.run("status")
	t.Logf("pier status (exit %d):\n%s%s", code, out, errOut)
	for _, want := range []string{"lease renewed", "MiB available of", "Routers:", "ready (up "} {
		if !strings.Contains(out, want) {
			t.Errorf("pier status does not say %q", want)
		}
	}

	if out := u.must("cluster", "backup", "unschedule", "hourly"); !strings.Contains(out, "stopped") {
		t.Fatalf("unschedule: %q", out)
	}
	u.fails("no cluster backup schedule", "cluster", "backup", "unschedule", "hourly")
	if ss := schedules(u); len(ss) != 0 {
		t.Fatalf("schedules after unschedule: %+v", ss)
	}
	if _, err := os.Stat(file); err != nil {
		t.Fatalf("the backup made is gone: %v", err)
	}
}
