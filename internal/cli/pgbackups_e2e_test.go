package cli_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pierpaas/pier/api"
)

// TestPostgresBackups is issue 15's backup walk-through: rows stored
// through the router, a backup captured, the table dropped, the backup
// restored and every row back; the backup downloaded and loaded by the
// system pg_restore into a fresh PostgreSQL; a daily schedule set and
// cleared; bad requests refused.
func TestPostgresBackups(t *testing.T) {
	appDir := notesApp(t)
	p := startUp(t, filepath.Join(t.TempDir(), "data"), freeUpPorts(t))
	u := cliUser{t, p}
	u.must("create", "notes")
	u.must("deploy", "--no-build", "-a", "notes", appDir)
	u.must("resources:add", "postgres", "-a", "notes", "--name", "db", "--size", "256M")
	want := ""
	for i := range 50 {
		note := "note-" + strconv.Itoa(i)
		want += note + "\n"
		waitUntil(t, "the app to store "+note, 60*time.Second, func() bool {
			code, _, err := get(p, "notes", "/add?note="+note)
			return err == nil && code == 200
		})
	}

	u.fails("no backup", "pg:backups:restore", "nope", "db")
	u.fails("HH:MM", "pg:backups:schedule", "db", "--at", "25:00")

	begin := time.Now()
	out := u.must("pg:backups:capture", "db")
	t.Logf("capture took %s: %s", time.Since(begin).Round(time.Millisecond), out)
	var list []api.Backup
	if err := json.Unmarshal([]byte(u.must("pg:backups", "db", "--json")), &list); err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].State != api.BackupSucceeded || list[0].Size == 0 || list[0].Database != "notes" {
		t.Fatalf("pg:backups: %+v", list)
	}
	id := list[0].ID
	if out := u.must("pg:backups"); !strings.Contains(out, id) || !strings.Contains(out, "succeeded") {
		t.Fatalf("pg:backups: %q", out)
	}

	// Drop the table, restore: every row is back.
	u.must("pg:psql", "db", "-a", "notes", "-c", "DROP TABLE notes")
	begin = time.Now()
	out = u.must("pg:backups:restore", id, "db")
	t.Logf("restore took %s: %s", time.Since(begin).Round(time.Millisecond), out)
	if code, b, err := get(p, "notes", "/"); err != nil || code != 200 || b != want {
		t.Fatalf("GET / after the restore: %d %q %v", code, b, err)
	}
	// The app's role owns what was restored: it writes on.
	if code, _, err := get(p, "notes", "/add?note=after"); err != nil || code != 200 {
		t.Fatalf("add after the restore: %d %v", code, err)
	}

	// Downloaded, the backup is what the system pg_restore reads.
	file := filepath.Join(t.TempDir(), "db.dump")
	u.must("pg:backups:download", id, "-o", file)
	dump, err := os.ReadFile(file)
	if err != nil || !bytes.HasPrefix(dump, []byte("PGDMP")) {
		t.Fatalf("download: %v, starts %q", err, dump[:min(len(dump), 16)])
	}
	if n := restoreIntoFreshPostgres(t, file); n != 50 {
		t.Fatalf("the fresh PostgreSQL holds %d notes after pg_restore, want 50", n)
	}

	// A daily schedule, then none.
	if out := u.must("pg:backups:schedule", "db", "--at", "02:00 Europe/Paris", "--keep-days", "3"); !strings.Contains(out, "kept 3 days") {
		t.Fatalf("schedule: %q", out)
	}
	var info api.ResourceInfo
	json.Unmarshal([]byte(u.must("resources:info", "db", "--json")), &info)
	if s := info.BackupSchedule; s == nil || s.At != "02:00" || s.Zone != "Europe/Paris" || s.Database != "notes" {
		t.Fatalf("schedule: %+v", info.BackupSchedule)
	}
	u.must("pg:backups:unschedule", "db")

	u.must("pg:backups:delete", id)
	if out := u.must("pg:backups", "--json"); strings.TrimSpace(out) != "[]" {
		t.Fatalf("after delete: %s", out)
	}
}

// restoreIntoFreshPostgres makes a throwaway PostgreSQL (initdb into a
// temporary directory, as an unprivileged user: postgres refuses root),
// loads file with the system pg_restore and counts the notes.
func restoreIntoFreshPostgres(t *testing.T, file string) int {
	t.Helper()
	const bin = "/usr/lib/postgresql/15/bin/"
	dir, err := os.MkdirTemp("", "pier-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	const nobody = 65534
	data, sock := filepath.Join(dir, "data"), filepath.Join(dir, "sock")
	os.Mkdir(sock, 0o700)
	dump, _ := os.ReadFile(file)
	os.WriteFile(filepath.Join(dir, "db.dump"), dump, 0o600)
	for _, p := range []string{dir, sock, filepath.Join(dir, "db.dump")} {
		if err := os.Chown(p, nobody, nobody); err != nil {
			t.Fatal(err)
		}
	}
	as := func(name string, args ...string) *exec.Cmd {
		cmd := exec.Command(bin+name, args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
		cmd.Dir = dir
		cmd.Env = []string{"PGHOST=" + sock, "PGUSER=postgres", "HOME=" + dir}
		return cmd
	}
	if out, err := as("initdb", "-D", data, "-U", "postgres", "--auth=trust", "--no-instructions").CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	srv := as("postgres", "-D", data, "-p", port, "-c", "listen_addresses=", "-c", "unix_socket_directories="+sock)
	var log bytes.Buffer
	srv.Stdout, srv.Stderr = &log, &log
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Process.Signal(syscall.SIGINT); srv.Wait() })
	waitUntil(t, "the fresh postgres", 30*time.Second, func() bool {
		return as("pg_isready", "-p", port).Run() == nil
	})
	if out, err := as("createdb", "-p", port, "restored").CombinedOutput(); err != nil {
		t.Fatalf("createdb: %v\n%s", err, out)
	}
	if out, err := as("pg_restore", "-p", port, "--no-owner", "-d", "restored", filepath.Join(dir, "db.dump")).CombinedOutput(); err != nil {
		t.Fatalf("pg_restore: %v\n%s\n%s", err, out, log.String())
	}
	out, err := as("psql", "-p", port, "-d", "restored", "-Atc", "SELECT count(*) FROM notes").CombinedOutput()
	if err != nil {
		t.Fatalf("psql: %v\n%s", err, out)
	}
	var n int
	fmt.Sscan(string(out), &n)
	return n
}
