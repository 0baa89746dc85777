// Command logs benchmarks log shipping and aggregation under a flood: one
// job writes as fast as it can while another writes a timestamped line
// every 100ms. The aggregator runs in a child process of its own, so that
// the memory of each side (host: the job's log writer and the shipper;
// server: the aggregator) is measured apart. It prints both processes'
// peak memory, what was written, shipped, lost and evicted, and the
// latency from a quiet line's write to a follower receiving it.
//
//	go run ./bench/logs [-duration 60s]
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/host/joblog"
	"github.com/pierpaas/pier/internal/pki"
	"github.com/pierpaas/pier/logs"
)

const childEnv = "PIER_BENCH_LOGS_CHILD"

func main() {
	if os.Getenv(childEnv) != "" {
		slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
		if err := child(); err != nil {
			fmt.Fprintln(os.Stderr, "aggregator:", err)
			os.Exit(1)
		}
		return
	}
	duration := flag.Duration("duration", time.Minute, "how long the flood lasts")
	ringBytes := flag.Int("ring-bytes", logs.DefaultMaxBytes, "the aggregator's per-app byte bound")
	payload := flag.Int("payload", 100, "bytes of text per flood line")
	flood := flag.Bool("flood", true, "run the flooding job (false: the quiet one alone, for the baseline latency)")
	flag.Parse()
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err := run(*duration, *ringBytes, *payload, *flood); err != nil {
		fmt.Fprintln(os.Stderr, "bench/logs:", err)
		os.Exit(1)
	}
}

// child runs an active aggregator over mutual TLS with the credentials in
// $PIER_BENCH_CREDS, prints its address, and serves its metrics too, until
// its stdin closes.
func child() error {
	creds, err := pki.LoadCredentials(os.Getenv("PIER_BENCH_CREDS"))
	if err != nil {
		return err
	}
	ringBytes, _ := strconv.Atoi(os.Getenv("PIER_BENCH_RING_BYTES"))
	reg := prometheus.NewRegistry()
	agg := logs.NewAggregator(logs.Config{MaxBytes: ringBytes, Registry: reg})
	agg.Activate()
	mux := http.NewServeMux()
	mux.Handle("/v1/logs/", agg.Handler())
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, TLSConfig: creds.ServerConfig()}
	go srv.ServeTLS(ln, "", "")
	fmt.Println("ADDR", ln.Addr().String())
	bufio.NewReader(os.Stdin).ReadString('\n') // until the parent goes
	return nil
}

// peakRSS reads a process's peak resident memory (VmHWM) in MiB.
func peakRSS(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

func newCreds(dir string) (server, host *pki.Credentials, err error) {
	ca, err := pki.NewCA("bench")
	if err != nil {
		return nil, nil, err
	}
	for _, name := range []string{"server", "host"} {
		if err := ca.Issue(filepath.Join(dir, name), pki.Request{CommonName: name, Role: pki.RoleServer, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}); err != nil {
			return nil, nil, err
		}
	}
	if server, err = pki.LoadCredentials(filepath.Join(dir, "server")); err != nil {
		return nil, nil, err
	}
	host, err = pki.LoadCredentials(filepath.Join(dir, "host"))
	return server, host, err
}

func run(duration time.Duration, ringBytes, payload int, flood bool) error {
	dir, err := os.MkdirTemp("", "pier-bench-logs")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	_, hostCreds, err := newCreds(filepath.Join(dir, "pki"))
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), childEnv+"=1", "PIER_BENCH_CREDS="+filepath.Join(dir, "pki", "server"),
		"PIER_BENCH_RING_BYTES="+strconv.Itoa(ringBytes))
	stdin, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { stdin.Close(); cmd.Wait() }()
	var addr string
	if _, err := fmt.Fscanf(bufio.NewReader(out), "ADDR %s\n", &addr); err != nil {
		return fmt.Errorf("aggregator did not start: %w", err)
	}

	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = hostCreds.ClientConfig()
	tr.ForceAttemptHTTP2 = true
	hc := &http.Client{Transport: tr}

	// The two jobs, with the host's default log files.
	noisyDir, calmDir := filepath.Join(dir, "noisy"), filepath.Join(dir, "calm")
	noisyW, err := joblog.NewWriter(noisyDir, joblog.Options{})
	if err != nil {
		return err
	}
	calmW, err := joblog.NewWriter(calmDir, joblog.Options{})
	if err != nil {
		return err
	}
	changed := make(chan struct{})
	shipper := logs.NewShipper(logs.ShipperConfig{
		Host: "bench", Client: hc, Leader: func() (string, <-chan struct{}) { return addr, changed },
		Jobs: func() []logs.ShipJob {
			return []logs.ShipJob{
				{ID: "noisy-web-1", App: "noisy", ProcessType: "web", Dir: noisyDir},
				{ID: "calm-web-1", App: "calm", ProcessType: "web", Dir: calmDir},
			}
		},
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go shipper.Run(ctx)

	// The follower of the quiet app measures latency from the time the
	// line carries to its arrival.
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+"/v1/logs/apps/calm?follow=true&lines=0", nil)
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	var mu sync.Mutex
	var lat []time.Duration
	received := map[int]bool{}
	go func() {
		dec := json.NewDecoder(resp.Body)
		for {
			var l api.AppLogLine
			if dec.Decode(&l) != nil {
				return
			}
			var n int
			var sent int64
			if _, err := fmt.Sscanf(l.Text, "calm %d %d", &n, &sent); err == nil {
				mu.Lock()
				lat = append(lat, time.Since(time.Unix(0, sent)))
				received[n] = true
				mu.Unlock()
			}
		}
	}()
	time.Sleep(200 * time.Millisecond)

	fmt.Printf("flooding for %s (payload %d bytes, ring %d MiB per app)...\n", duration, payload, ringBytes>>20)
	stop := make(chan struct{})
	var written uint64
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		s := noisyW.Stream("stdout")
		text := strings.Repeat("z", payload)
		for flood {
			select {
			case <-stop:
				return
			default:
			}
			for range 1000 {
				written++
				fmt.Fprintf(s, "%d %s\n", written, text)
			}
		}
	}()
	calmSent := 0
	go func() {
		defer wg.Done()
		s := calmW.Stream("stdout")
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				fmt.Fprintf(s, "calm %d %d\n", calmSent, time.Now().UnixNano())
				calmSent++
			}
		}
	}()
	var heapPeak uint64
	end := time.After(duration)
	tick := time.NewTicker(time.Second)
sample:
	for {
		select {
		case <-end:
			break sample
		case <-tick.C:
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			heapPeak = max(heapPeak, ms.HeapInuse)
		}
	}
	close(stop)
	wg.Wait()
	noisyW.Close()
	calmW.Close()
	// Let the shipper catch up with what the files still hold.
	total := written + uint64(calmSent)
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if st := shipper.Stats(); st.Shipped+st.Lost >= total {
			break
		}
	}
	time.Sleep(300 * time.Millisecond)
	st := shipper.Stats()
	metrics := scrape(hc, addr)
	hostPeak, aggPeak := peakRSS(os.Getpid()), peakRSS(cmd.Process.Pid)

	mu.Lock()
	defer mu.Unlock()
	slices.Sort(lat)
	pct := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(p*float64(len(lat))))]
	}
	missing := calmSent - len(received)
	fmt.Printf("\n| figure | value |\n|---|---|\n")
	fmt.Printf("| flood lines written | %d (%.0f/s) |\n", written, float64(written)/duration.Seconds())
	fmt.Printf("| lines shipped | %d (%.0f/s) |\n", st.Shipped, float64(st.Shipped)/duration.Seconds())
	fmt.Printf("| lines lost on the host (rotated away unshipped, reported) | %d |\n", st.Lost)
	fmt.Printf("| lines evicted from the aggregator's rings | %.0f |\n", metrics["pier_logs_lines_evicted_total"])
	fmt.Printf("| aggregator ring bytes at the end | %.0f |\n", metrics["pier_logs_ring_bytes"])
	fmt.Printf("| host side peak RSS (writer + shipper) | %.1f MiB (Go heap peak %.1f MiB) |\n", hostPeak, float64(heapPeak)/(1<<20))
	fmt.Printf("| aggregator peak RSS | %.1f MiB |\n", aggPeak)
	fmt.Printf("| quiet app lines | %d sent, %d missing |\n", calmSent, missing)
	fmt.Printf("| quiet app follow latency | p50 %.1f ms, p99 %.1f ms, max %.1f ms |\n",
		ms(pct(0.5)), ms(pct(0.99)), ms(pct(1)))
	if missing > 0 {
		return fmt.Errorf("%d lines of the quiet app never arrived", missing)
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// scrape reads the aggregator's counters from its metrics page.
func scrape(hc *http.Client, addr string) map[string]float64 {
	out := map[string]float64{}
	resp, err := hc.Get("https://" + addr + "/metrics")
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) == 2 {
			name, _, _ := strings.Cut(f[0], "{")
			v, _ := strconv.ParseFloat(f[1], 64)
			out[name] += v
		}
	}
	return out
}
