package cli_test

import (
	"context"
	"crypto/tls"
	"fmt"
	mathrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pierpaas/pier/client"
	"github.com/pierpaas/pier/internal/server"
	"github.com/pierpaas/pier/internal/testutil"
)

var pierBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "pier-bin")
	if err != nil {
		panic(err)
	}
	pierBin = filepath.Join(dir, "pier")
	out, err := exec.Command("go", "build", "-o", pierBin, "../../cmd/pier").CombinedOutput()
	if err != nil {
		panic("build pier: " + err.Error() + "\n" + string(out))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// upPorts are the ports of a `pier up`: etcd client and peer, API, DNS,
// host API, router HTTP and HTTPS, git over SSH.
// upPorts are pier up's ports; the last is the first of its TCP-route
// range (tcpRoutePorts of them).
type upPorts [9]int

const tcpRoutePorts = 50

// freeUpPorts picks free ports. A pointer, so that startUp can pick new
// ones for a first start that lost a port to another process, and a
// restart on the same data directory reuses what the first start used.
// The TCP-route range is one of its own too, not the default 20000-20999:
// another pier up on the machine (a benchmark, a user's) would hold that,
// and the test's route would reach the other's backend.
func freeUpPorts(t *testing.T) *upPorts {
	var p upPorts
	for i := range p[:8] {
		p[i] = testutil.FreePort(t)
	}
	p[8] = freeRange(t, tcpRoutePorts)
	return &p
}

// freeRange finds n consecutive ports, from 40000 up, none of them taken.
func freeRange(t *testing.T, n int) int {
	t.Helper()
	for try := 0; try < 100; try++ {
		base := 40000 + mathrand.IntN(180)*n
		free := true
		for port := base; port < base+n && free; port++ {
			l, err := net.Listen("tcp", ":"+strconv.Itoa(port))
			if err != nil {
				free = false
				continue
			}
			l.Close()
		}
		if free {
			return base
		}
	}
	t.Fatal("no free range of ports for TCP routes")
	return 0
}

// configHome is where the CLI config of the `pier up` on dataDir lives:
// beside it, so a test never touches the user's own.
func configHome(dataDir string) string { return filepath.Join(filepath.Dir(dataDir), "config") }

type upProc struct {
	cmd        *exec.Cmd
	apiPort    int
	httpPort   int
	httpsPort  int
	sshPort    int
	tcpBase    int // the first port of its TCP-route range
	configHome string
	etcdURL    string
	stderr     *syncBuffer   // pier up's log, written while tests read it
	exited     chan struct{} // closed once the process has exited
	waitErr    error
}

// startUp starts `pier up` on dataDir and waits until it is ready. A
// free port can be taken by another process between its check and pier's
// bind (tests run side by side); a first start that fails so is made
// again on other ports. extra are more flags for pier up.
// hostNetwork runs pier up's jobs in the host's network: for tests whose
// builds fetch a buildpack from a server of the test on this machine's
// loopback, which jobs in networks of their own cannot reach (as they
// cannot reach any service of their host).
var hostNetwork = []string{"--network", "host"}

func startUp(t *testing.T, dataDir string, ports *upPorts, extra ...string) *upProc {
	t.Helper()
	_, err := os.Stat(dataDir)
	first := os.IsNotExist(err)
	for attempt := 1; ; attempt++ {
		p, err := tryStartUp(t, dataDir, *ports, extra...)
		if err == nil {
			return p
		}
		if !first || attempt == 3 || !strings.Contains(p.stderr.String(), "address already in use") {
			t.Fatal(err)
		}
		t.Logf("pier up lost a port to another process; again on other ports")
		os.RemoveAll(dataDir)
		*ports = *freeUpPorts(t)
	}
}

func tryStartUp(t *testing.T, dataDir string, ports upPorts, extra ...string) (*upProc, error) {
	t.Helper()
	cmd := exec.Command(pierBin, append([]string{"up", "--data-dir", dataDir,
		"--etcd-client-port", strconv.Itoa(ports[0]), "--etcd-peer-port", strconv.Itoa(ports[1]),
		"--api-port", strconv.Itoa(ports[2]), "--dns-port", strconv.Itoa(ports[3]),
		"--host-api-port", strconv.Itoa(ports[4]), "--http-port", strconv.Itoa(ports[5]),
		"--https-port", strconv.Itoa(ports[6]), "--git-ssh-port", strconv.Itoa(ports[7]),
		"--tcp-ports", fmt.Sprintf("%d-%d", ports[8], ports[8]+tcpRoutePorts-1)}, extra...)...)
	p := &upProc{cmd: cmd, tcpBase: ports[8], apiPort: ports[2], httpPort: ports[5], httpsPort: ports[6], sshPort: ports[7], stderr: &syncBuffer{}, exited: make(chan struct{}),
		etcdURL: "https://127.0.0.1:" + strconv.Itoa(ports[0]), configHome: configHome(dataDir)}
	cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+p.configHome)
	cmd.Stderr = p.stderr
	// Cleanups run last first: the process is killed, then whatever
	// containers and shims it left are removed.
	t.Cleanup(func() { cleanupHost(filepath.Join(dataDir, "host")) })
	if err := cmd.Start(); err != nil {
		return p, err
	}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.exited
	})
	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	begin := time.Now()
	for {
		resp, err := hc.Get("https://127.0.0.1:" + strconv.Itoa(p.apiPort) + "/readyz")
		if err == nil {
			resp.Body.Close()
			// pier up writes the CLI's config last, once every role runs.
			_, cfgErr := os.Stat(filepath.Join(p.configHome, "pier", "config.json"))
			if resp.StatusCode == 200 && cfgErr == nil {
				t.Logf("pier up ready after %s", time.Since(begin).Round(time.Millisecond))
				return p, nil
			}
		}
		select {
		case <-p.exited:
			return p, fmt.Errorf("pier up exited: %v\n%s", p.waitErr, p.stderr)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Since(begin) > 30*time.Second {
			return p, fmt.Errorf("pier up not ready after 30s\n%s", p.stderr)
		}
	}
}

// TestUpRestartKeepsData drives the real binary as `make run` does: it
// becomes ready, stops cleanly on an interrupt, and comes back with its data.
func TestUpRestartKeepsData(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	ports := freeUpPorts(t)
	p := startUp(t, dataDir, ports)

	cl, err := client.Connect(client.Config{Endpoints: []string{p.etcdURL}, CredentialsDir: server.PKIDir(dataDir)})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := cl.Etcd.Put(ctx, "/pier/test/kept", "yes"); err != nil {
		t.Fatal(err)
	}
	tok1, err := exec.Command(pierBin, "token", "--data-dir", dataDir).Output()
	if err != nil {
		t.Fatal(err)
	}

	p.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-p.exited:
		if p.waitErr != nil {
			t.Fatalf("pier up exited with %v after Ctrl-C\n%s", p.waitErr, p.stderr)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("pier up did not stop within 15s of Ctrl-C")
	}
	if strings.Contains(p.stderr.String(), `"level":"error"`) {
		t.Errorf("errors logged during a clean stop:\n%s", p.stderr)
	}

	startUp(t, dataDir, ports)
	resp, err := cl.Etcd.Get(ctx, "/pier/test/kept")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "yes" {
		t.Fatalf("data lost across restart: %v %v", resp, err)
	}
	tok2, _ := exec.Command(pierBin, "token", "--data-dir", dataDir).Output()
	if string(tok1) != string(tok2) || !strings.HasPrefix(string(tok1), "PIER1-") {
		t.Fatalf("token %q then %q", tok1, tok2)
	}
}

func TestBadInvocationsFail(t *testing.T) {
	cases := [][]string{
		{"token", "--data-dir", t.TempDir()},                                                 // no cluster there
		{"token", "--role", "admin", "--data-dir", t.TempDir()},                              // unknown role
		{"server", "--data-dir", t.TempDir(), "--join", "127.0.0.1:1"},                       // join without a token
		{"server", "--data-dir", t.TempDir(), "--name", "Bad Name"},                          // invalid name
		{"server", "--data-dir", t.TempDir(), "--advertise-ip", "0.0.0.0"},                   // not a concrete IP
		{"server", "--data-dir", t.TempDir(), "--join", "127.0.0.1:1", "--token", "garbage"}, // malformed token
		{"no-such-command"},
	}
	for _, args := range cases {
		out, err := exec.Command(pierBin, args...).CombinedOutput()
		var ee *exec.ExitError
		if !errAs(err, &ee) || ee.ExitCode() == 0 {
			t.Errorf("pier %v: err %v, want a non-zero exit\n%s", args, err, out)
			continue
		}
		if !strings.Contains(string(out), "pier:") {
			t.Errorf("pier %v: no error message:\n%s", args, out)
		}
	}
}

func errAs(err error, target **exec.ExitError) bool {
	e, ok := err.(*exec.ExitError)
	if ok {
		*target = e
	}
	return ok
}
