package deployer_test

import (
	"context"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/scheduler"
)

// healthPath is the web process type's HTTP health check path.
var healthPath = "/health-" + strconv.Itoa(os.Getpid())

// fakeApp plays the programs behind the fake runtime's jobs: it listens on
// the host port of every running job of a release marked healthy, so that
// the agent's real HTTP health check passes, and on nothing for the others,
// so that theirs fails. It also samples how many web jobs serve.
type fakeApp struct {
	cli *clientv3.Client
	wg  sync.WaitGroup

	mu         sync.Mutex
	healthy    map[string]bool      // by release
	listeners  map[int]net.Listener // by host port
	minServing int                  // fewest web jobs seen serving while sampling; -1: not sampling
	sampling   bool
}

func (a *fakeApp) setHealthy(release string, ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.healthy[release] = ok
}

// sample starts counting the fewest web jobs serving at once; the result
// says whether the deployment ever left fewer than its target serving.
func (a *fakeApp) sample() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.sampling, a.minServing = true, -1
}

func (a *fakeApp) fewestServing() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.minServing
}

func (a *fakeApp) run(ctx context.Context) {
	defer a.wg.Done()
	for ctx.Err() == nil {
		if s, err := scheduler.Load(ctx, a.cli, scheduler.Config{}); err == nil {
			a.sync(s)
		}
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// sync opens the listeners that should be open and closes the others.
func (a *fakeApp) sync(s scheduler.Snapshot) {
	a.mu.Lock()
	defer a.mu.Unlock()
	want := map[int]bool{}
	serving := 0
	for _, j := range s.Jobs {
		st := j.Status
		if st == nil || st.State != api.JobRunning || len(st.HostPorts) == 0 {
			continue
		}
		if a.healthy[j.Job.Release] {
			want[st.HostPorts[0]] = true
		}
		if j.Job.ProcessType == "web" && st.Healthy != nil && *st.Healthy {
			serving++
		}
	}
	for port, l := range a.listeners {
		if !want[port] {
			l.Close()
			delete(a.listeners, port)
		}
	}
	for port := range want {
		if a.listeners[port] != nil {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue // the next sync tries again
		}
		a.listeners[port] = l
		go http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// Only this process's jobs answer: a port of another test
			// process's cluster that happens to share the number does not.
			if r.URL.Path != healthPath {
				http.NotFound(w, r)
			}
		}))
	}
	if a.sampling && (a.minServing < 0 || serving < a.minServing) {
		a.minServing = serving
	}
}

func (a *fakeApp) closeAll() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for port, l := range a.listeners {
		l.Close()
		delete(a.listeners, port)
	}
}
