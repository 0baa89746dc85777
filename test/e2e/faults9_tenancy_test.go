package e2e

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	goruntime "runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/internal/procfile"
)

// Scenario 13: a hostile tenant. App mallory runs beside app victim, on
// the same hosts and on others, and tries from inside its jobs everything
// that worked when jobs shared their host's network: connecting to
// victim's jobs, to etcd, the host API, the controller and the routers;
// taking the router's ports; reading the host's sockets; binding victim's
// address with SO_REUSEPORT. Every attempt fails while victim serves
// through the routers without a failed request, until `pier access allow
// victim --from mallory` opens the direct way, and its removal closes it.
func TestHostileTenant(t *testing.T) {
	c := getCluster(t)
	r := report(t, "13-hostile-tenant")
	victims := c.deployWeb(t, "victim", 3)
	l := r.track(startLoad(t, c, "victim"))
	mallory := c.deployProbe(t, "mallory", 3)
	begin := time.Now()

	victimOn := map[string]string{} // host → a victim job's address
	for _, j := range victims {
		if len(j.Addrs) == 0 {
			t.Fatalf("victim job %s has no address", j.ID)
		}
		victimOn[j.HostID] = j.Addrs[0]
	}
	hosts := map[string]bool{}
	for _, m := range mallory {
		hosts[m.HostID] = true
	}
	if len(hosts) < 2 {
		t.Fatalf("mallory runs on %v only: the scenario needs it on two hosts", hostsOf(mallory))
	}

	var allowFrom *probe // a mallory job with a victim on another host, for the access rule
	for _, m := range mallory {
		p := c.probeOf(t, m)
		own := c.node(m.HostID)
		var otherVictim string
		for h, addr := range victimOn {
			if h != m.HostID {
				otherVictim = addr
			}
		}
		gw := gatewayOf(t, p.ip)
		refused := []struct{ op, addr, what string }{
			{"connect", victimOn[m.HostID], "victim's job on the same host"},
			{"connect", otherVictim, "victim's job on another host"},
			{"connect", net.JoinHostPort(own.ip, "7301"), "its host's agent API"},
			{"connect", net.JoinHostPort(gw, "7301"), "its host's agent API at the gateway"},
			{"connect", net.JoinHostPort(gw, "7300"), "the controller relay (for builds only)"},
			{"connect", "127.0.0.1:7301", "the agent API on loopback"},
			{"connect", net.JoinHostPort(c.servers[0].ip, "2379"), "etcd"},
			{"connect", net.JoinHostPort(c.servers[0].ip, "7300"), "the controller"},
			{"connect", net.JoinHostPort(c.routers[0].ip, fmt.Sprint(routerHTTPPort)), "a router's node"},
			{"bind", net.JoinHostPort(own.ip, fmt.Sprint(routerHTTPPort)), "the router's HTTP port on its host"},
			{"bind", net.JoinHostPort(own.ip, "443"), "the router's HTTPS port on its host"},
			{"bind", net.JoinHostPort(own.ip, "20000"), "a TCP-route port on its host"},
			{"bind", "0.0.0.0:80", "a privileged port"},
			{"reuseport", victimOn[m.HostID], "victim's address and port with SO_REUSEPORT"},
		}
		for _, a := range refused {
			if ok, detail := p.try(t, a.op, a.addr); ok {
				t.Errorf("mallory on %s could %s %s (%s)", m.HostID, a.op, a.addr, a.what)
			} else {
				t.Logf("mallory on %s: %s %s (%s) refused: %s", m.HostID, a.op, a.addr, a.what, detail)
			}
		}
		if ok, tcp := p.try(t, "proctcp", ":0"); !ok {
			t.Errorf("mallory cannot read /proc/net/tcp: %s", tcp)
		} else if foreign := foreignSockets(tcp, p.ip); len(foreign) > 0 {
			t.Errorf("mallory on %s sees sockets that are not its own in /proc/net/tcp: %v", m.HostID, foreign)
		}
		// The internal DNS answers victim's jobs' addresses (names are
		// no secret; the policy is what keeps mallory out).
		if ok, ips := p.try(t, "resolve", "web.victim.pier.internal"); !ok || len(strings.Fields(ips)) != len(victims) {
			t.Errorf("mallory on %s resolves web.victim.pier.internal to %q (ok=%v), want the %d victim jobs' addresses", m.HostID, ips, ok, len(victims))
		}
		if otherVictim != "" && allowFrom == nil {
			allowFrom = p
			allowFrom.target = otherVictim
		}
	}

	ctl, err := c.controller()
	if err != nil {
		t.Fatal(err)
	}
	defer ctl.Close()
	ctx, cancel := ctxT(20 * time.Second)
	defer cancel()
	if _, err := ctl.AllowAccess(ctx, "victim", "mallory"); err != nil {
		t.Fatalf("pier access allow victim --from mallory: %v", err)
	}
	allowed := time.Now()
	allowFrom.waitTry(t, "connect", allowFrom.target, true, 10*time.Second)
	t.Logf("access allowed: mallory reaches victim across hosts after %s", time.Since(allowed).Round(time.Millisecond))
	if err := ctl.DenyAccess(ctx, "victim", "mallory"); err != nil {
		t.Fatalf("pier access deny: %v", err)
	}
	denied := time.Now()
	allowFrom.waitTry(t, "connect", allowFrom.target, false, 10*time.Second)
	t.Logf("access removed: mallory is cut off again after %s", time.Since(denied).Round(time.Millisecond))

	r.setRecovery(time.Since(begin), "every hostile attempt, then an access rule allowed and removed")
	l.stop()
	sum := l.summary()
	r.setLoad(sum)
	t.Logf("victim's load: %s", sum)
	if sum.Failed > 0 {
		t.Errorf("%d of victim's requests failed while mallory tried", sum.Failed)
	}
}

// deployProbe creates app running testdata/probe as its web process, n
// jobs, and waits for them to run.
func (c *cluster) deployProbe(t *testing.T, app string, n int) []api.AppJob {
	t.Helper()
	ctl, err := c.controller()
	if err != nil {
		t.Fatal(err)
	}
	defer ctl.Close()
	ctx, cancel := ctxT(20 * time.Second)
	defer cancel()
	if _, err := ctl.CreateApp(ctx, api.CreateAppRequest{Name: app}); err != nil {
		t.Fatalf("create %s: %v", app, err)
	}
	t.Cleanup(func() { c.destroy(t, app) })
	body, digest, err := packSlug("testdata/probe")
	if err != nil {
		t.Fatal(err)
	}
	if err := ctl.PutBlob(ctx, digest, int64(len(body)), strings.NewReader(string(body))); err != nil {
		t.Fatal(err)
	}
	procs := procfile.ProcessTypes(app, procfile.Procfile{"web": "exec python3 probe.py $PORT"})
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
	c.scale(t, ctl, app, n)
	return c.waitRunning(t, app, n, 60*time.Second)
}

// probe is one of mallory's jobs, reached from its host's namespace (as
// the host's health checks reach it): the test asks it to try things.
type probe struct {
	job, ip, target, base string
	hc                    *http.Client
}

func (c *cluster) probeOf(t *testing.T, j api.AppJob) *probe {
	t.Helper()
	if len(j.Addrs) == 0 {
		t.Fatalf("job %s has no address", j.ID)
	}
	host, _, _ := net.SplitHostPort(j.Addrs[0])
	tr := &http.Transport{DialContext: dialInNetns(c.node(j.HostID).ns), DisableKeepAlives: true}
	p := &probe{job: j.ID, ip: host, hc: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
	p.base = "http://" + j.Addrs[0]
	return p
}

func (p *probe) try(t *testing.T, op, addr string) (bool, string) {
	t.Helper()
	resp, err := p.hc.Get(p.base + "/try?op=" + op + "&addr=" + url.QueryEscape(addr))
	if err != nil {
		t.Fatalf("probe %s: %v", p.job, err)
	}
	defer resp.Body.Close()
	var out struct {
		OK     bool   `json:"ok"`
		Detail string `json:"detail"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("probe %s: %v", p.job, err)
	}
	return out.OK, out.Detail
}

// waitTry repeats an attempt until it has the wanted outcome: access
// rules reach every host's policy within moments, not at once.
func (p *probe) waitTry(t *testing.T, op, addr string, want bool, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, detail := p.try(t, op, addr)
		if ok == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s %s from %s: ok=%v (%s) after %s, want %v", op, addr, p.job, ok, detail, timeout, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// dialInNetns dials from inside the network namespace ns, on a thread of
// its own that is thrown away afterwards.
func dialInNetns(ns string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		type result struct {
			c   net.Conn
			err error
		}
		ch := make(chan result, 1)
		go func() {
			goruntime.LockOSThread() // never unlocked: the thread ends with the goroutine
			f, err := os.Open(nsPath(ns))
			if err != nil {
				ch <- result{nil, err}
				return
			}
			defer f.Close()
			if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
				ch <- result{nil, err}
				return
			}
			var d net.Dialer
			conn, err := d.DialContext(ctx, network, addr)
			ch <- result{conn, err}
		}()
		r := <-ch
		return r.c, r.err
	}
}

// gatewayOf is the first address of a job's /24: its host's gateway.
func gatewayOf(t *testing.T, ip string) string {
	t.Helper()
	a, err := netip.ParseAddr(ip)
	if err != nil {
		t.Fatal(err)
	}
	b := a.As4()
	b[3] = 1
	return netip.AddrFrom4(b).String()
}

// foreignSockets lists the local addresses in a /proc/net/tcp that are
// neither the job's own address, loopback nor the wildcard.
func foreignSockets(procNetTCP, own string) []string {
	mine := map[string]bool{hexAddr("0.0.0.0"): true, hexAddr("127.0.0.1"): true, hexAddr(own): true}
	var out []string
	for _, line := range strings.Split(procNetTCP, "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		addr, _, _ := strings.Cut(f[1], ":")
		if !mine[addr] {
			out = append(out, f[1])
		}
	}
	return out
}

// hexAddr is an IPv4 address as /proc/net/tcp prints it: the 32-bit
// value in the kernel's (little-endian) byte order, in hex.
func hexAddr(ip string) string {
	b := netip.MustParseAddr(ip).As4()
	return fmt.Sprintf("%08X", binary.LittleEndian.Uint32(b[:]))
}
