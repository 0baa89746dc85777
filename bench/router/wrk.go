package main

import (
	"bufio"
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// wrkResult is what one wrk run measured.
type wrkResult struct {
	rps      float64
	p50, p99 time.Duration
	requests int64
	// errors: socket errors (connect, read, write, timeout) and non-2xx or
	// 3xx responses.
	errors int64

	// Filled in by the caller: the proxy's CPU time over the run, and the
	// share of the machine other processes kept busy meanwhile.
	wrkCPU, proxyCPU time.Duration
	proxySyscalls    int64
	others           float64
}

type wrkOptions struct {
	threads, conns int
	duration       time.Duration
	host           string
}

// runWrk drives http://addr/ with wrk and parses its --latency report. wrk
// runs in its own process group and is killed if ctx ends.
func runWrk(ctx context.Context, bin, addr string, o wrkOptions) (wrkResult, string, error) {
	args := []string{
		"-t" + strconv.Itoa(o.threads), "-c" + strconv.Itoa(o.conns),
		"-d" + strconv.Itoa(max(1, int(o.duration.Round(time.Second)/time.Second))) + "s",
		"--latency", "-H", "Host: " + o.host, "http://" + addr + "/",
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		if ctx.Err() != nil {
			return wrkResult{}, string(out), ctx.Err()
		}
		return wrkResult{}, string(out), fmt.Errorf("wrk %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	r, err := parseWrk(string(out))
	r.wrkCPU = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	if err != nil {
		return r, string(out), fmt.Errorf("wrk output: %v\n%s", err, out)
	}
	return r, string(out), nil
}

var (
	reRPS      = regexp.MustCompile(`(?m)^Requests/sec:\s+([0-9.]+)`)
	rePct      = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([0-9.]+(?:us|ms|s|m))\s*$`)
	reRequests = regexp.MustCompile(`(?m)^\s+(\d+) requests in `)
	reSocket   = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	reNon2xx   = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
)

// parseWrk reads wrk 4's report:
//
//	  Latency Distribution
//	     50%  410.00us
//	     99%    2.31ms
//	  123456 requests in 10.00s, 15.00MB read
//	  Socket errors: connect 0, read 0, write 0, timeout 0
//	  Non-2xx or 3xx responses: 12
//	Requests/sec:  12345.67
func parseWrk(out string) (wrkResult, error) {
	var r wrkResult
	m := reRPS.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("no Requests/sec line")
	}
	r.rps, _ = strconv.ParseFloat(m[1], 64)
	for _, m := range rePct.FindAllStringSubmatch(out, -1) {
		d, err := time.ParseDuration(m[2])
		if err != nil {
			return r, fmt.Errorf("latency %q: %v", m[2], err)
		}
		if m[1] == "50" {
			r.p50 = d
		} else {
			r.p99 = d
		}
	}
	if r.p50 == 0 || r.p99 == 0 {
		return r, fmt.Errorf("no latency distribution (was --latency given?)")
	}
	if m := reRequests.FindStringSubmatch(out); m != nil {
		r.requests, _ = strconv.ParseInt(m[1], 10, 64)
	}
	if m := reSocket.FindStringSubmatch(out); m != nil {
		for _, s := range m[1:] {
			n, _ := strconv.ParseInt(s, 10, 64)
			r.errors += n
		}
	}
	if m := reNon2xx.FindStringSubmatch(out); m != nil {
		n, _ := strconv.ParseInt(m[1], 10, 64)
		r.errors += n
	}
	return r, nil
}

// wrkVersion is wrk's first line of usage ("wrk debian/4.1.0-3+b2 [epoll]").
func wrkVersion(bin string) string {
	out, _ := exec.Command(bin, "-v").CombinedOutput()
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	if sc.Scan() {
		v, _, _ := strings.Cut(sc.Text(), " Copyright")
		return strings.TrimSpace(v)
	}
	return "wrk"
}
