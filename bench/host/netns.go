package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/host/jobnet"
)

// netnsEnv makes the re-executed benchmark time the namespace steps and
// print them as JSON: they run in a process of their own, since in the
// benchmark's process they left its etcd connections timing out.
const netnsEnv = "PIER_BENCH_HOST_NETNS_STEPS"

type netnsTimes struct {
	Attach, Detach []time.Duration
}

// netnsStepsApart runs netnsSteps in a child process.
func netnsStepsApart(ctx context.Context, n int) (attach, detach []time.Duration, err error) {
	self, err := os.Executable()
	if err != nil {
		return nil, nil, err
	}
	cmd := exec.CommandContext(ctx, self)
	cmd.Env = append(os.Environ(), netnsEnv+"="+strconv.Itoa(n))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, nil, fmt.Errorf("namespace steps: %w", err)
	}
	var t netnsTimes
	if err := json.Unmarshal(out, &t); err != nil {
		return nil, nil, fmt.Errorf("namespace steps: %w: %s", err, out)
	}
	return t.Attach, t.Detach, nil
}

// netnsChild is the child's side of netnsStepsApart.
func netnsChild(n string) int {
	count, err := strconv.Atoi(n)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/host:", err)
		return 1
	}
	a, d, err := netnsSteps(context.Background(), count)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/host:", err)
		return 1
	}
	json.NewEncoder(os.Stdout).Encode(netnsTimes{a, d})
	return 0
}

// netnsSteps times what a job's network namespace costs on its own: n
// times jobnet.Host.Attach (namespace, veth pair, addresses, routes: what
// the agent does before it starts a job) and Detach (what it does once a
// job has ended), on a job network of the benchmark's own (its own tag,
// gateway, policy table and state directory, on a /24 of the cluster
// range this machine does not route yet), removed at the end.
func netnsSteps(ctx context.Context, n int) (attach, detach []time.Duration, err error) {
	var r [2]byte
	rand.Read(r[:])
	tag := hex.EncodeToString(r[:])
	cluster := netip.MustParsePrefix(api.DefaultJobNetwork)
	var subnet netip.Prefix
	// From the top of the range down, away from where agents start.
	for p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 255, 254, 0}), 24); cluster.Contains(p.Addr()); {
		if !jobnet.LocallyRouted(p) {
			subnet = p
			break
		}
		a := p.Addr().As4()
		if a[2] == 0 {
			a[1]--
			a[2] = 255
		} else {
			a[2]--
		}
		p = netip.PrefixFrom(netip.AddrFrom4(a), 24)
	}
	if !subnet.IsValid() {
		return nil, nil, fmt.Errorf("no free /24 in %s for the namespace timing", cluster)
	}
	dir, err := os.MkdirTemp("/run/pier", "bench-netns-")
	if err != nil {
		return nil, nil, err
	}
	h, err := jobnet.Open(jobnet.Config{Subnet: subnet, Cluster: cluster, MTU: 1450, StateDir: dir, Tag: tag,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	defer func() {
		jobnet.ReleaseAll(dir)
		h.Close()
		os.RemoveAll(dir)
	}()
	ip := subnet.Addr().Next().Next()
	for i := range n + warmups {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		id := fmt.Sprintf("netns-%d", i)
		t0 := time.Now()
		if _, err := h.Attach(id, ip); err != nil {
			return nil, nil, err
		}
		t1 := time.Now()
		if err := h.Detach(id); err != nil {
			return nil, nil, err
		}
		if i >= warmups {
			attach, detach = append(attach, t1.Sub(t0)), append(detach, time.Since(t1))
		}
	}
	return attach, detach, nil
}
