// Command resources measures PostgreSQL resources: it starts a
// single-node `pier up` in a temporary directory, deploys the
// examples/postgres app and times `pier resources:add postgres -a APP`
// to the app's first successful query through the router; then runs
// pgbench -S (select only) and -N (simple update) the way the app reaches
// its database: inside the network namespace of one of the app's web
// jobs (nsenter --net), to the address DATABASE_URL's host name
// (postgres.pg-NAME.pier.internal) resolves to at the job's resolver (its
// gateway, port 53); and, as the reference, from the host straight to the
// member's address (resources:info), and prints the ratio; then fills the
// database to -db-size with pgbench -i and times pg:backups:capture and
// pg:backups:restore.
//
// It needs root, runc, and pgbench and psql (SETUP_BENCH=1 scripts/setup),
// and jobs in their own network namespaces (pier up's default as root).
//
//	go run ./bench/resources [-db-size 1GB] [-clients 4] [-duration 10s] [-runs 3]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/host/agent"
)

const app, db = "bench-notes", "benchdb"

func main() {
	size := flag.String("db-size", "1GB", "database size for the backup figures (pgbench -i -s N, about 15MB per scale unit)")
	clients := flag.Int("clients", 4, "pgbench clients (-c)")
	duration := flag.Duration("duration", 10*time.Second, "each pgbench run's length (-T)")
	runs := flag.Int("runs", 3, "pgbench runs per mode and address, alternated; the median is printed")
	flag.Parse()
	bytes, err := parseSize(*size)
	if err != nil {
		fatalf("-db-size: %v", err)
	}
	if _, err := exec.LookPath("pgbench"); err != nil {
		fatalf("pgbench is not installed (SETUP_BENCH=1 scripts/setup installs it)")
	}
	root, err := os.MkdirTemp("", "pier-bench-resources-")
	if err != nil {
		fatalf("%v", err)
	}
	defer os.RemoveAll(root)
	b := &bench{root: root}
	defer b.cleanup()
	fail := func(format string, args ...any) { b.cleanup(); os.RemoveAll(root); fatalf(format, args...) }
	if err := b.start(); err != nil {
		fail("%v", err)
	}

	// resources:add to the app's first successful query.
	// The volume holds the filled database and its WAL, and during the
	// restore (one transaction) the old tables beside the new ones and
	// the new ones' WAL: about 3 times the database (a 1 GB one ran out
	// of space on 3 GB).
	vol := fmt.Sprintf("%dM", max(1024, 5*bytes>>20))
	addTime, err := b.addToFirstQuery(vol)
	if err != nil {
		fail("%v", err)
	}
	fmt.Printf("resources:add postgres to first query: %s (target <= 10s)\n", addTime.Round(10*time.Millisecond))

	// pgbench from an app's job, through the address it gets, and from
	// the host straight to the member.
	asApp, direct, err := b.urls()
	if err != nil {
		fail("%v", err)
	}
	fmt.Printf("DATABASE_URL host %s resolves to %s at the job's resolver %s; member (resources:info) %s\n",
		asApp.name, asApp.addr, asApp.resolver, asApp.member)
	fmt.Printf("the app's job: %s, address %s, namespace %s\n", asApp.job, asApp.jobIP, asApp.netns)
	if err := b.pgbench(direct, "-i", "-q", "-s", "10"); err != nil {
		fail("%v", err)
	}
	fmt.Printf("pgbench -c %d -j %d -T %s (scale 10), median of %d runs, alternated:\n", *clients, min(*clients, 2), *duration, *runs)
	fmt.Printf("  %-4s %22s %22s %8s\n", "mode", "app's job, its URL tps", "host to member tps", "ratio")
	for _, mode := range []string{"-S", "-N"} {
		var tps [2][]float64
		for range max(1, *runs) {
			for i, netns := range []string{asApp.netns, ""} {
				u := asApp.url
				if netns == "" {
					u = direct
				}
				t, err := b.tps(netns, u, mode, *clients, *duration)
				if err != nil {
					fail("%v", err)
				}
				tps[i] = append(tps[i], t)
			}
		}
		r, d := median(tps[0]), median(tps[1])
		fmt.Printf("  %-4s %22.0f %22.0f %8.3f   (runs: %s / %s)\n", mode, r, d, r/d, listTPS(tps[0]), listTPS(tps[1]))
	}

	// Backups of a database of the given size.
	scale := max(1, int(bytes/(15<<20)))
	begin := time.Now()
	if err := b.pgbench(direct, "-i", "-q", "-s", strconv.Itoa(scale)); err != nil {
		fail("%v", err)
	}
	fill := time.Since(begin)
	dbBytes, err := b.dbSize(direct)
	if err != nil {
		fail("%v", err)
	}
	fmt.Printf("database filled with pgbench -i -s %d: %d MB in %s\n", scale, dbBytes>>20, fill.Round(100*time.Millisecond))
	begin = time.Now()
	if _, err := b.pier("pg:backups:capture", db); err != nil {
		fail("%v", err)
	}
	capture := time.Since(begin)
	fmt.Printf("pg:backups:capture: %s\n", capture.Round(100*time.Millisecond))
	out, err := b.pier("pg:backups", db, "--json")
	if err != nil {
		fail("%v", err)
	}
	var list []api.Backup
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list) == 0 {
		fail("pg:backups: %v %s", err, out)
	}
	last := list[0]
	for _, bk := range list {
		if bk.CreatedAt.After(last.CreatedAt) {
			last = bk
		}
	}
	begin = time.Now()
	if _, err := b.pier("pg:backups:restore", last.ID, db); err != nil {
		fail("%v", err)
	}
	restore := time.Since(begin)
	fmt.Printf("backup size: %.1f MB\n", float64(last.Size)/(1<<20))
	fmt.Printf("pg:backups:restore: %s\n", restore.Round(100*time.Millisecond))
	if n, err := b.psql(direct, "SELECT count(*) FROM pgbench_accounts"); err != nil || n != strconv.Itoa(scale*100000) {
		fail("after the restore pgbench_accounts has %q rows, want %d: %v", n, scale*100000, err)
	}
}

type bench struct {
	root, bin string
	httpPort  int
	up        *exec.Cmd
}

func (b *bench) dataDir() string { return filepath.Join(b.root, "data") }

func (b *bench) env() []string {
	return append(os.Environ(), "XDG_CONFIG_HOME="+filepath.Join(b.root, "config"))
}

func (b *bench) run(dir, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir, cmd.Env = dir, b.env()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

func (b *bench) pier(args ...string) (string, error) { return b.run(".", b.bin, args...) }

func (b *bench) start() error {
	b.bin = filepath.Join(b.root, "pier")
	if _, err := b.run(".", "go", "build", "-o", b.bin, "./cmd/pier"); err != nil {
		return err
	}
	ports := make([]string, 8)
	for i := range ports {
		ports[i] = strconv.Itoa(freePort())
	}
	b.httpPort, _ = strconv.Atoi(ports[5])
	b.up = exec.Command(b.bin, "up", "--data-dir", b.dataDir(),
		"--etcd-client-port", ports[0], "--etcd-peer-port", ports[1], "--api-port", ports[2], "--dns-port", ports[3],
		"--host-api-port", ports[4], "--http-port", ports[5], "--https-port", ports[6], "--git-ssh-port", ports[7])
	b.up.Env = b.env()
	log, err := os.Create(filepath.Join(b.root, "up.log"))
	if err != nil {
		return err
	}
	b.up.Stdout, b.up.Stderr = log, log
	if err := b.up.Start(); err != nil {
		return err
	}
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if _, err := b.pier("apps"); err == nil {
			return nil
		}
	}
	return fmt.Errorf("pier up did not come up; see %s", log.Name())
}

// addToFirstQuery deploys examples/postgres, waits until it answers (503
// without a database), then times resources:add to its first 200.
func (b *bench) addToFirstQuery(vol string) (time.Duration, error) {
	dir := filepath.Join(b.root, "app")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, err
	}
	build := exec.Command("go", "build", "-o", filepath.Join(dir, "notes"), "./examples/postgres")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("build examples/postgres: %v\n%s", err, out)
	}
	if err := os.WriteFile(filepath.Join(dir, "Procfile"), []byte("web: ./notes\n"), 0o644); err != nil {
		return 0, err
	}
	for _, args := range [][]string{{"create", app}, {"deploy", "--no-build", "-a", app, dir}} {
		if _, err := b.pier(args...); err != nil {
			return 0, err
		}
	}
	if err := wait("the app to answer", time.Minute, func() bool {
		code, body, err := b.get("/")
		return err == nil && code == http.StatusServiceUnavailable && strings.Contains(body, "DATABASE_URL")
	}); err != nil {
		return 0, err
	}
	begin := time.Now()
	if _, err := b.pier("resources:add", "postgres", "-a", app, "--name", db, "--size", vol); err != nil {
		return 0, err
	}
	err := wait("the app's first query", 2*time.Minute, func() bool {
		code, _, err := b.get("/")
		return err == nil && code == http.StatusOK
	})
	return time.Since(begin), err
}

// appPath is how one of the app's web jobs reaches its database.
type appPath struct {
	job, jobIP, netns string // the job, its address and its network namespace
	name, resolver    string // DATABASE_URL's host name, the job's resolver
	addr, member      string // what the name resolves to, resources:info's member
	url               string // DATABASE_URL with the resolved address
}

// urls finds one of the app's running web jobs and resolves its
// DATABASE_URL's host at the job's resolver (its gateway), and returns
// that with the same URL on the member's address, for the host.
func (b *bench) urls() (appPath, string, error) {
	var p appPath
	out, err := b.pier("env", "-a", app, "--json")
	if err != nil {
		return p, "", err
	}
	var env map[string]string
	if err := json.Unmarshal([]byte(out), &env); err != nil {
		return p, "", fmt.Errorf("env --json: %v", err)
	}
	dbURL := env["DATABASE_URL"]
	out, err = b.pier("resources:info", db, "--json")
	if err != nil {
		return p, "", err
	}
	var info api.ResourceInfo
	if err := json.Unmarshal([]byte(out), &info); err != nil || info.Member == "" || dbURL == "" {
		return p, "", fmt.Errorf("no DATABASE_URL or member: %v %s", err, out)
	}
	p.member = info.Member
	u, err := url.Parse(dbURL)
	if err != nil {
		return p, "", err
	}
	p.name = u.Hostname()

	// The app's one web job once the redeploy with DATABASE_URL is over:
	// the job of the release before may still be listed while it stops.
	var pick *api.AppJob
	err = wait("the app's redeploy to end (one web job running)", time.Minute, func() bool {
		out, err = b.pier("ps", "-a", app, "--json")
		var jobs api.JobList
		if err != nil || json.Unmarshal([]byte(out), &jobs) != nil {
			return false
		}
		var web []api.AppJob
		for _, j := range jobs.Jobs {
			if j.ProcessType == "web" && !j.OneOff {
				web = append(web, j)
			}
		}
		if len(web) != 1 || web[0].State != api.JobRunning || web[0].Desired == api.DesiredShutdown || len(web[0].Addrs) == 0 {
			return false
		}
		pick = &web[0]
		return true
	})
	if err != nil {
		return p, "", fmt.Errorf("%v: %s", err, out)
	}
	host, _, err := net.SplitHostPort(pick.Addrs[0])
	if err != nil {
		return p, "", err
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !netip.MustParsePrefix(api.DefaultJobNetwork).Contains(ip) {
		return p, "", fmt.Errorf("job %s has address %s, not one of the job network %s: is pier up running with --network host?",
			pick.ID, pick.Addrs[0], api.DefaultJobNetwork)
	}
	p.job, p.jobIP = pick.ID, ip.String()
	p.netns = filepath.Join(agent.NetNSDir(filepath.Join(b.dataDir(), "host")), pick.ID)
	// The job's gateway, the first address of its host's subnet, is its
	// resolver (its /etc/resolv.conf).
	p.resolver = netip.PrefixFrom(ip, api.JobSubnetBits).Masked().Addr().Next().String()
	if p.job == "" {
		return p, "", fmt.Errorf("no running web job of %s: %s", app, out)
	}
	if _, err := os.Stat(p.netns); err != nil {
		return p, "", fmt.Errorf("job %s's network namespace: %v", p.job, err)
	}
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, net.JoinHostPort(p.resolver, "53"))
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	addrs, err := r.LookupNetIP(ctx, "ip4", p.name)
	if err != nil || len(addrs) == 0 {
		return p, "", fmt.Errorf("resolve %s at %s: %v", p.name, p.resolver, err)
	}
	p.addr = addrs[0].String()
	resolved := *u
	resolved.Host = net.JoinHostPort(p.addr, u.Port())
	p.url = resolved.String()
	direct := *u
	direct.Host = info.Member
	return p, direct.String(), nil
}

func (b *bench) pgbench(u string, args ...string) error {
	_, err := b.run(".", "pgbench", append(append([]string{}, args...), u)...)
	return err
}

var tpsRE = regexp.MustCompile(`tps = ([0-9.]+)`)

// tps runs pgbench against u, inside network namespace netns if not "".
func (b *bench) tps(netns, u, mode string, clients int, d time.Duration) (float64, error) {
	args := []string{"pgbench", mode, "-n", "-c", strconv.Itoa(clients), "-j", strconv.Itoa(min(clients, 2)),
		"-T", strconv.Itoa(int(d.Seconds())), u}
	if netns != "" {
		if _, err := os.Stat(netns); err != nil {
			return 0, fmt.Errorf("the app's job's network namespace is gone (job replaced?): %v", err)
		}
		args = append([]string{"nsenter", "--net=" + netns, "--"}, args...)
	}
	out, err := b.run(".", args[0], args[1:]...)
	if err != nil {
		return 0, err
	}
	m := tpsRE.FindStringSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("no tps in pgbench's output:\n%s", out)
	}
	return strconv.ParseFloat(m[1], 64)
}

func (b *bench) psql(u, query string) (string, error) {
	out, err := b.run(".", "psql", "-XAtq", "-c", query, u)
	return strings.TrimSpace(out), err
}

func (b *bench) dbSize(u string) (int64, error) {
	out, err := b.psql(u, "SELECT pg_database_size(current_database())")
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(out, 10, 64)
}

func (b *bench) get(path string) (int, string, error) {
	req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1:"+strconv.Itoa(b.httpPort)+path, nil)
	req.Host = app + ".localhost"
	resp, err := (&http.Client{Timeout: 2 * time.Second}).Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// cleanup stops pier up and removes the containers and shims it left,
// which outlive it by design.
func (b *bench) cleanup() {
	if b.up != nil && b.up.Process != nil {
		b.up.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { b.up.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			b.up.Process.Kill()
		}
		b.up = nil
	}
	agent.Purge(filepath.Join(b.dataDir(), "host"))
}

func listTPS(xs []float64) string {
	var s []string
	for _, x := range xs {
		s = append(s, strconv.FormatFloat(x, 'f', 0, 64))
	}
	return strings.Join(s, ", ")
}

func median(xs []float64) float64 {
	xs = slices.Clone(xs)
	slices.Sort(xs)
	return xs[len(xs)/2]
}

func wait(what string, d time.Duration, ok func() bool) error {
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if ok() {
			return nil
		}
	}
	return fmt.Errorf("timed out waiting for %s", what)
}

// parseSize reads "1GB", "100MB", "512M", "2G" or a byte count.
func parseSize(s string) (int64, error) {
	s = strings.ToUpper(strings.TrimSpace(s))
	s = strings.TrimSuffix(s, "B")
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "G"):
		mult, s = 1<<30, strings.TrimSuffix(s, "G")
	case strings.HasSuffix(s, "M"):
		mult, s = 1<<20, strings.TrimSuffix(s, "M")
	case strings.HasSuffix(s, "K"):
		mult, s = 1<<10, strings.TrimSuffix(s, "K")
	}
	n, err := strconv.ParseFloat(s, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return int64(n * float64(mult)), nil
}

func freePort() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fatalf("%v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench/resources: "+format+"\n", args...)
	os.Exit(1)
}
