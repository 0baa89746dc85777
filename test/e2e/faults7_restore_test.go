package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/backup"
	"github.com/pierpaas/pier/client"
	"github.com/pierpaas/pier/internal/procfile"
)

// restoredDomain is the cluster domain the restored cluster serves under.
const restoredDomain = "restored.e2e.test"

// Scenario 11: the whole cluster lost and restored from a backup. Three
// apps (one with two jobs and a slug of its own, one with a config var,
// and examples/postgres with a PostgreSQL resource, rows written through
// the routers and a database backup captured) are backed up while the
// routers serve the first under load (no request fails); every node is
// then destroyed (processes, containers, volumes, data directories,
// namespaces). A damaged copy of the backup is refused before anything
// is written; the backup itself is restored onto three fresh servers
// (the first from the file, the other two joining it), three fresh hosts
// and two fresh routers under a new domain, and the first two apps serve
// again there with their slugs and config, without a push, through the
// same CA and API key. The resource comes back on an empty volume with
// its attachment made again; once the operator loads the database
// backup the cluster backup carried (pg:backups:restore, through the
// client), the third app serves its rows and stores new ones. The
// restored cluster is torn down at the end, so the next scenario gets a
// new shared one.
func TestClusterRestore(t *testing.T) {
	c := getCluster(t)
	r := report(t, "11-cluster-restore")
	const one, two, notes, db = "bk-one", "bk-two", "bk-notes", "bk-db"
	ctl, err := c.controller()
	if err != nil {
		t.Fatal(err)
	}
	defer ctl.Close()
	c.createApp(t, one)
	body, digest := ownSlug(t, one)
	waitDeployment(t, ctl, c.releaseSlug(t, ctl, one, body, digest, nil).Deployment, 60*time.Second)
	c.scaleAndWait(t, one, 2)
	c.createApp(t, two)
	waitDeployment(t, ctl, c.release(t, ctl, two, map[string]string{"GREETING": "kept across the restore"}).Deployment, 60*time.Second)
	c.waitServed(t, two, 30*time.Second)
	if got := slugOf(t, c, one); got != one {
		t.Fatalf("%s serves slug-of %q before the backup", one, got)
	}
	// The third app, its database, its rows and a backup of them.
	c.createNotes(t, ctl, notes)
	t2 := time.Now()
	c.addResource(t, ctl, db, notes)
	r.Extra["db_attached_ms"] = ms(time.Since(t2))
	for _, note := range []string{"first", "second"} {
		waitForErr(t, notes+" to store "+note, 60*time.Second, func() error {
			return answered(routerGet(c, notes, "/add?note="+note))("")
		})
	}
	rows := "first\nsecond\n"
	// Until the first release's job (no database) has stopped, a router
	// may still pick it.
	waitForErr(t, notes+" to list its rows", 30*time.Second, func() error {
		return answered(routerGet(c, notes, "/"))(rows)
	})
	dump := captureBackup(t, ctl, db)

	// The backup, under load.
	l := r.track(startLoad(t, c, one))
	time.Sleep(500 * time.Millisecond)
	file := filepath.Join(t.TempDir(), "cluster.backup")
	t0 := time.Now()
	m := takeBackup(t, ctl, file)
	took := time.Since(t0)
	time.Sleep(500 * time.Millisecond)
	l.stop()
	sum := l.summary()
	r.setLoad(sum)
	t.Logf("backup in %s (%d parts); load during it: %s", took.Round(time.Millisecond), len(m.Entries), sum)
	r.Extra["backup_ms"] = ms(took)
	if sum.Failed > 0 || sum.Requests == 0 {
		t.Fatalf("requests failed during the backup: %s", sum)
	}
	if n, _ := m.Blobs(); n < 4 {
		t.Fatalf("the backup holds %d blobs, want the three slugs and the database backup", n)
	}
	if !m.Has(backup.BlobEntryPrefix + dump.SHA256) {
		t.Fatalf("the backup lacks database backup %s's dump", dump.ID)
	}

	// Every node destroyed: the shared cluster is no more.
	sharedMu.Lock()
	shared = nil
	sharedMu.Unlock()
	c.teardown(false)

	// A damaged copy is refused before anything is written.
	good, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	damaged := append([]byte(nil), good...)
	damaged[len(damaged)/3] ^= 0x01
	bad := filepath.Join(t.TempDir(), "damaged.backup")
	if err := os.WriteFile(bad, damaged, 0o600); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(t.TempDir(), "data")
	out, err := exec.Command(pierBin, "cluster", "restore", bad, "--data-dir", target, "--domain", restoredDomain).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "damaged or incomplete") {
		t.Fatalf("restore of a damaged backup: %v\n%s", err, out)
	}
	if _, err := os.Stat(target); !os.IsNotExist(err) {
		t.Fatalf("a damaged backup was refused, but %s was made: %v", target, err)
	}

	// Restored onto fresh nodes under a new domain.
	t1 := time.Now()
	rc, err := newClusterWith(clusterOptions{restore: file, domain: restoredDomain})
	t.Cleanup(func() {
		if rc != nil {
			if dir := rc.teardown(t.Failed()); dir != "" {
				t.Logf("the restored cluster's logs are in %s", dir)
			}
		}
	})
	if err != nil {
		t.Fatalf("restored cluster: %v", err)
	}
	if rc.adminKey != c.adminKey || rc.caPEM != c.caPEM {
		t.Fatal("the restored cluster has another API key or CA")
	}
	rc.waitServed(t, one, 120*time.Second)
	rc.waitServed(t, two, 60*time.Second)
	served := time.Since(t1)
	r.setRecovery(served, "from the first restored server's start to both apps served on every router")
	t.Logf("both apps served %s after the restore began", served.Round(time.Millisecond))
	if got := slugOf(t, rc, one); got != one {
		t.Fatalf("%s serves slug-of %q after the restore", one, got)
	}
	rc.waitRunning(t, one, 2, 60*time.Second)
	ctl2, err := rc.controller()
	if err != nil {
		t.Fatal(err)
	}
	defer ctl2.Close()
	// The database: its resource back on a fresh member with the app
	// attached again, the backup the cluster backup carried loaded into
	// it by the operator, and the rows served.
	t3 := time.Now()
	waitAttached(t, ctl2, db, notes, 180*time.Second)
	restorePg(t, ctl2, db, dump.ID, 120*time.Second)
	waitForErr(t, notes+"'s rows served by every router after the restore", 60*time.Second, func() error {
		for _, rt := range rc.routers {
			if err := answered(getVia(routerAddr(rt), rc, notes, "/"))(rows); err != nil {
				return fmt.Errorf("%s: %w", rt.name, err)
			}
		}
		return nil
	})
	r.Extra["db_rows_back_ms"] = ms(time.Since(t3))
	t.Logf("%s serves its rows %s after the other two were served and running (%s in all)", notes,
		time.Since(t3).Round(time.Millisecond), time.Since(t1).Round(time.Millisecond))
	if err := answered(routerGet(rc, notes, "/add?note=third"))(""); err != nil {
		t.Fatalf("%s stores a row after the restore: %v", notes, err)
	}
	ctx, cancel := ctxT(10 * time.Second)
	defer cancel()
	env, err := ctl2.Env(ctx, two)
	if err != nil || env["GREETING"] != "kept across the restore" {
		t.Fatalf("%s's config after the restore: %v %v", two, env, err)
	}
	// Every server holds the slugs: the joined ones copied them.
	for _, s := range rc.servers {
		cs, err := rc.controllerOn(s)
		if err != nil {
			t.Fatal(err)
		}
		st, err := cs.Status(ctx)
		cs.Close()
		if err != nil {
			t.Fatalf("status from %s: %v", s.name, err)
		}
		if len(st.Servers) != 3 || len(st.Store.Members) != 3 {
			t.Fatalf("the restored cluster as %s sees it: servers %+v, members %+v", s.name, st.Servers, st.Store.Members)
		}
	}
}

// takeBackup writes a cluster backup to file, checking it as it arrives.
func takeBackup(t *testing.T, ctl interface {
	ClusterBackup(context.Context) (io.ReadCloser, error)
}, file string) *backup.Manifest {
	t.Helper()
	ctx, cancel := ctxT(2 * time.Minute)
	defer cancel()
	body, err := ctl.ClusterBackup(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	f, err := os.OpenFile(file, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := backup.Verify(io.TeeReader(body, f))
	if err != nil {
		t.Fatalf("the backup: %v", err)
	}
	return m
}

// slugOf is what the app's slug-of file says, through a router.
func slugOf(t *testing.T, c *cluster, app string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+routerAddr(c.routers[0])+"/slug-of", nil)
	req.Host = app + "." + c.domain
	resp, err := insecure.Do(req)
	if err != nil {
		t.Fatalf("GET /slug-of of %s: %v", app, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode != 200 {
		return resp.Status
	}
	return strings.TrimSpace(string(b))
}

// notesClient is for the notes app, whose first request may open the
// pool and make its table.
var notesClient = &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// routerGet is GET path of app through the cluster's routers, in turn.
func routerGet(c *cluster, app, path string) (int, string, error) {
	target := c.lb.pick()
	if target == "" {
		return 0, "", fmt.Errorf("no router in rotation")
	}
	return getVia(target, c, app, path)
}

// getVia is GET path of app through the router at target.
func getVia(target string, c *cluster, app, path string) (int, string, error) {
	req, err := http.NewRequest(http.MethodGet, "http://"+target+path, nil)
	if err != nil {
		return 0, "", err
	}
	req.Host = app + "." + c.domain
	resp, err := notesClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, string(b), err
}

// answered checks a notes answer: 200, with the body want unless want
// is "".
func answered(code int, body string, err error) func(want string) error {
	return func(want string) error {
		switch {
		case err != nil:
			return err
		case code != http.StatusOK:
			return fmt.Errorf("%d: %s", code, strings.TrimSpace(body))
		case want != "" && body != want:
			return fmt.Errorf("rows %q, want %q", body, want)
		}
		return nil
	}
}

// The notes slug: examples/postgres built for the stack and packed
// with its Procfile, as `pier deploy --no-build` would.
var (
	notesOnce   sync.Once
	notesBody   []byte
	notesDigest string
	notesErr    error
)

func notesSlug(t *testing.T) ([]byte, string) {
	t.Helper()
	notesOnce.Do(func() {
		dir, err := os.MkdirTemp("", "pier-e2e-notes-")
		if err != nil {
			notesErr = err
			return
		}
		defer os.RemoveAll(dir)
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, "notes"), "../../examples/postgres")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			notesErr = fmt.Errorf("build examples/postgres: %v\n%s", err, out)
			return
		}
		if notesErr = os.WriteFile(filepath.Join(dir, "Procfile"), []byte("web: ./notes\n"), 0o644); notesErr != nil {
			return
		}
		notesBody, notesDigest, notesErr = packSlug(dir)
	})
	if notesErr != nil {
		t.Fatal(notesErr)
	}
	return notesBody, notesDigest
}

// createNotes creates app with the notes slug released (answering 503
// until a database is attached), and destroys it when the test ends.
func (c *cluster) createNotes(t *testing.T, ctl *client.Controller, app string) {
	t.Helper()
	body, digest := notesSlug(t)
	ctx, cancel := ctxT(20 * time.Second)
	defer cancel()
	if _, err := ctl.CreateApp(ctx, api.CreateAppRequest{Name: app}); err != nil {
		t.Fatalf("create %s: %v", app, err)
	}
	t.Cleanup(func() { c.destroy(t, app) })
	if err := ctl.PutBlob(ctx, digest, int64(len(body)), bytes.NewReader(body)); err != nil {
		t.Fatalf("upload the slug of %s: %v", app, err)
	}
	procs := procfile.ProcessTypes(app, procfile.Procfile{"web": "./notes"})
	web := procs["web"]
	web.Resources = api.Resources{CPUMillis: 250, MemoryMB: 64}
	procs["web"] = web
	res, err := ctl.CreateRelease(ctx, app, api.CreateReleaseRequest{
		Artifact:  &api.Artifact{Type: "slug", SHA256: digest, Size: int64(len(body))},
		Processes: procs,
	})
	if err != nil {
		t.Fatalf("release of %s: %v", app, err)
	}
	waitDeployment(t, ctl, res.Deployment, 60*time.Second)
}

// addResource is `pier resources:add postgres -a app --name name`: it
// waits until the resource is available and app is attached (its
// release carries DATABASE_URL). The resource is removed when the test
// ends, before the app.
func (c *cluster) addResource(t *testing.T, ctl *client.Controller, name, app string) {
	t.Helper()
	ctx, cancel := ctxT(20 * time.Second)
	defer cancel()
	if _, err := ctl.CreateResource(ctx, api.CreateResourceRequest{Type: "postgres", Name: name, App: app, SizeMB: 128}); err != nil {
		t.Fatalf("resources:add postgres -a %s: %v", app, err)
	}
	t.Cleanup(func() {
		// Through a server of this cluster that still runs, as destroy:
		// after a restore, none does.
		ctl, err := c.controller()
		if err != nil {
			t.Logf("remove resource %s: %v", name, err)
			return
		}
		defer ctl.Close()
		ctx, cancel := ctxT(20 * time.Second)
		defer cancel()
		if _, err := ctl.RemoveResource(ctx, name, name); err != nil {
			t.Logf("remove resource %s: %v", name, err)
		}
	})
	waitAttached(t, ctl, name, app, 180*time.Second)
}

// waitAttached waits until resource name is available with app attached.
func waitAttached(t *testing.T, ctl *client.Controller, name, app string, timeout time.Duration) {
	t.Helper()
	var last string
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := ctxT(10 * time.Second)
		info, err := ctl.Resource(ctx, name)
		cancel()
		if err == nil {
			a, ok := info.Attachment(app)
			if info.State == api.ResourceAvailable && ok && a.State == api.AttachmentAttached {
				return
			}
			last = fmt.Sprintf("%s, attachments %+v, member %q on %q", info.State, info.Attachments, info.Member, info.Host)
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			t.Fatalf("resource %s with %s attached: not after %s; last: %s", name, app, timeout, last)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// captureBackup is `pier pg:backups:capture name`, waited for.
func captureBackup(t *testing.T, ctl *client.Controller, name string) api.Backup {
	t.Helper()
	ctx, cancel := ctxT(20 * time.Second)
	b, err := ctl.CaptureBackup(ctx, name, "")
	cancel()
	if err != nil {
		t.Fatalf("pg:backups:capture %s: %v", name, err)
	}
	waitFor(t, "backup "+b.ID+" to end", 120*time.Second, func() bool {
		ctx, cancel := ctxT(10 * time.Second)
		defer cancel()
		got, err := ctl.Backup(ctx, b.ID)
		if err == nil {
			b = got
		}
		return err == nil && got.State.Done()
	})
	if b.State != api.BackupSucceeded || b.SHA256 == "" {
		t.Fatalf("backup %s of %s: %s: %s", b.ID, name, b.State, b.Error)
	}
	return b
}

// restorePg is `pier pg:backups:restore id name`: a restore job started,
// attached to (it waits for that) and followed to its end, again until
// one succeeds (the member may not serve yet) or timeout passes.
func restorePg(t *testing.T, ctl *client.Controller, name, id string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		out, err := restoreOnce(ctl, name, id)
		if err == nil {
			t.Logf("pg:backups:restore %s %s: %s", id, name, strings.TrimSpace(out))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pg:backups:restore %s %s: %v\n%s", id, name, err, out)
		}
		t.Logf("pg:backups:restore %s %s, again: %v", id, name, err)
		time.Sleep(2 * time.Second)
	}
}

func restoreOnce(ctl *client.Controller, name, id string) (string, error) {
	ctx, cancel := ctxT(10 * time.Second)
	job, err := ctl.RestoreBackup(ctx, name, api.RestoreRequest{Backup: id})
	cancel()
	if err != nil {
		return "", err
	}
	ctx, cancel = ctxT(60 * time.Second)
	ac, err := ctl.Attach(ctx, job.App, job.ID, client.AttachOptions{})
	cancel()
	if err != nil {
		ctx, cancel := ctxT(10 * time.Second)
		ctl.KillJob(ctx, job.App, job.ID)
		cancel()
		return "", fmt.Errorf("attach to %s: %w", job.ID, err)
	}
	defer ac.Close()
	ac.CloseStdin()
	var out bytes.Buffer
	done := make(chan struct{})
	var exit api.AttachExit
	go func() {
		defer close(done)
		exit, err = ac.Copy(&out, &out)
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		ac.Close()
		<-done
		return out.String(), fmt.Errorf("restore job %s not done after 2m", job.ID)
	}
	if err != nil {
		return out.String(), fmt.Errorf("restore job %s: %w", job.ID, err)
	}
	if exit.ExitCode != 0 || exit.Error != "" {
		return out.String(), fmt.Errorf("restore job %s: exit %d %s %s", job.ID, exit.ExitCode, exit.Signal, exit.Error)
	}
	return out.String(), nil
}
