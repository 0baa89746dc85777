package e2e

import (
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pierpaas/pier/backup"
)

// restoredDomain is the cluster domain the restored cluster serves under.
const restoredDomain = "restored.e2e.test"

// Scenario 11: the whole cluster lost and restored from a backup. Two
// apps (one with two jobs and a slug of its own, one with a config var)
// are backed up while the routers serve the first under load (no request
// fails); every node is then destroyed (processes, containers, data
// directories, namespaces). A damaged copy of the backup is refused
// before anything is written; the backup itself is restored onto three
// fresh servers (the first from the file, the other two joining it),
// three fresh hosts and two fresh routers under a new domain, and both
// apps serve again there with their slugs and config, without a push,
// through the same CA and API key. The restored cluster is torn down at
// the end, so the next scenario gets a new shared one.
func TestClusterRestore(t *testing.T) {
	c := getCluster(t)
	r := report(t, "11-cluster-restore")
	const one, two = "bk-one", "bk-two"
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
	if n, _ := m.Blobs(); n < 2 {
		t.Fatalf("the backup holds %d artifacts, want both slugs", n)
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
