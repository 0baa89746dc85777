package cli_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/pierpaas/pier/api"
)

// TestClusterRestorePostgres: an app with a PostgreSQL resource and
// rows, a database backup captured, the cluster backed up and the
// machine lost; restored under a new domain, the resource comes back
// (its member on an empty volume, the app's role and database made
// again), the database backup from the cluster backup loads, and the
// app serves its rows through the router.
func TestClusterRestorePostgres(t *testing.T) {
	appDir := notesApp(t)
	tmp := t.TempDir()
	dataDir, ports := filepath.Join(tmp, "data"), freeUpPorts(t)
	p := startUp(t, dataDir, ports)
	u := cliUser{t, p}
	u.must("create", "notes")
	u.must("deploy", "--no-build", "-a", "notes", appDir)
	u.must("resources:add", "postgres", "-a", "notes", "--name", "db", "--size", "256M")
	for _, note := range []string{"first", "second"} {
		waitUntil(t, "the app to store "+note, 60*time.Second, func() bool {
			code, _, err := get(p, "notes", "/add?note="+note)
			return err == nil && code == 200
		})
	}
	u.must("pg:backups:capture", "db")
	var list []api.Backup
	if err := json.Unmarshal([]byte(u.must("pg:backups", "db", "--json")), &list); err != nil || len(list) != 1 {
		t.Fatalf("pg:backups: %+v %v", list, err)
	}
	id := list[0].ID
	file := filepath.Join(tmp, "cluster.backup")
	u.must("cluster", "backup", "-o", file)

	// The machine is lost.
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
	cleanupHost(filepath.Join(dataDir, "host"))
	os.RemoveAll(dataDir)

	p2 := startUp(t, filepath.Join(tmp, "data2"), ports, "--restore", file, "--domain", "restored.test")
	u2 := cliUser{t, p2}
	waitUntil(t, "the resource attached again", 120*time.Second, func() bool {
		var info api.ResourceInfo
		if json.Unmarshal([]byte(u2.must("resources:info", "db", "--json")), &info) != nil {
			return false
		}
		return info.State == api.ResourceAvailable && len(info.Attachments) == 1 && info.Attachments[0].State == api.AttachmentAttached
	})
	var restoreOut string
	for deadline := time.Now().Add(90 * time.Second); ; {
		out, errOut, code := u2.run("pg:backups:restore", id, "db")
		restoreOut = out + errOut
		if code == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pg:backups:restore after the cluster restore: %s\npier up:\n%s", restoreOut, tail(p2.stderr.String(), 6000))
		}
		time.Sleep(2 * time.Second)
	}
	t.Logf("pg:backups:restore: %s", restoreOut)
	waitUntil(t, "the rows served after the restore", 60*time.Second, func() bool {
		code, b, err := getHost(p2, "notes.restored.test", "/")
		return err == nil && code == 200 && b == "first\nsecond\n"
	})
	if code, _, err := getHost(p2, "notes.restored.test", "/add?note=third"); err != nil || code != 200 {
		t.Fatalf("add after the restore: %d %v", code, err)
	}
}
