package cli_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pierpaas/pier/api"
)

// TestBackendKilledUnderLoad kills one of three web jobs with kill -9
// while clients load the app through the router: only requests in flight
// to it may fail, and none once the router has dropped it.
func TestBackendKilledUnderLoad(t *testing.T) {
	p := startUp(t, filepath.Join(t.TempDir(), "data"), freeUpPorts(t))
	u := cliUser{t, p}
	u.must("create", "hello")
	u.must("deploy", "--no-build", "-a", "hello", writeApp(t, "web: python3 -m http.server $PORT\n", map[string]string{"index.html": "alive\n"}))
	u.must("scale", "-a", "hello", "web=3")
	waitUntil(t, "three healthy web jobs", 30*time.Second, func() bool {
		n := 0
		for _, j := range u.jobs("hello").Jobs {
			if j.State == api.JobRunning && j.Healthy != nil && *j.Healthy {
				n++
			}
		}
		return n == 3
	})

	type result struct {
		at  time.Time
		err string
	}
	const clients = 4
	var (
		mu      sync.Mutex
		results []result
		stop    = make(chan struct{})
		wg      sync.WaitGroup
	)
	url := fmt.Sprintf("http://127.0.0.1:%d/", p.httpPort)
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hc := &http.Client{Timeout: 5 * time.Second}
			for {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequest(http.MethodGet, url, nil)
				req.Host = "hello.localhost"
				r := result{}
				resp, err := hc.Do(req)
				if err != nil {
					r.err = err.Error()
				} else {
					body, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 || string(body) != "alive\n" {
						r.err = fmt.Sprintf("%d %q", resp.StatusCode, body)
					}
				}
				r.at = time.Now()
				mu.Lock()
				results = append(results, r)
				mu.Unlock()
			}
		}()
	}
	time.Sleep(2 * time.Second)

	victim := u.jobs("hello").Jobs[0].ID
	pid := jobPID(t, victim)
	killed := time.Now()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// The job is gone for the router once it is no longer a healthy,
	// running job (its instance leaves discovery as it exits).
	waitUntil(t, "the killed job to end", 20*time.Second, func() bool {
		for _, j := range u.jobs("hello").Jobs {
			if j.ID == victim && j.State == api.JobRunning {
				return false
			}
		}
		return true
	})
	gone := time.Now()
	time.Sleep(3 * time.Second)
	close(stop)
	wg.Wait()

	var before, during, after int
	var samples []string
	for _, r := range results {
		if r.err == "" {
			continue
		}
		switch {
		case r.at.Before(killed):
			before++
		case r.at.Before(gone):
			during++
		default:
			after++
		}
		if len(samples) < 5 {
			samples = append(samples, r.err)
		}
	}
	t.Logf("%d requests; failed: %d before the kill, %d between the kill and the job's end (%s), %d after; %v",
		len(results), before, during, gone.Sub(killed).Round(time.Millisecond), after, samples)
	if before != 0 || after != 0 || during > clients {
		t.Fatalf("failed requests: %d before the kill, %d after the job ended, %d in between (at most %d may be in flight)",
			before, after, during, clients)
	}
}

// jobPID finds the process of a job by the PIER_JOB_ID in its environment.
func jobPID(t *testing.T, id string) int {
	t.Helper()
	want := []byte("PIER_JOB_ID=" + id + "\x00")
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		env, err := os.ReadFile(filepath.Join(d, "environ"))
		if err != nil || !bytes.Contains(env, want) {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(d))
		return pid
	}
	t.Fatalf("no process of job %s", id)
	return 0
}
