package main

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"path/filepath"

	"github.com/pierpaas/pier/host/jobnet"
)

// jobListener makes a job network on this machine (a random tag and /24
// of 10.253.0.0/16) with one job namespace, and returns a function that
// listens on that job's address, as a job's server does, and one that
// removes it all.
func jobListener(tmp string) (func() (net.Listener, error), func(), error) {
	n := rand.IntN(250) + 1
	h, err := jobnet.Open(jobnet.Config{
		Subnet:   netip.MustParsePrefix(fmt.Sprintf("10.253.%d.0/24", n)),
		Cluster:  netip.MustParsePrefix("10.253.0.0/16"),
		StateDir: filepath.Join(tmp, "netns"),
		Tag:      fmt.Sprintf("%04x", rand.IntN(1<<16)),
	})
	if err != nil {
		return nil, nil, fmt.Errorf("job network: %w", err)
	}
	ip := h.Gateway().Next()
	path, err := h.Attach("bench-backends", ip)
	if err != nil {
		h.Close()
		return nil, nil, err
	}
	listen := func() (net.Listener, error) { return jobnet.ListenTCP(path, net.JoinHostPort(ip.String(), "0")) }
	closeAll := func() {
		h.Detach("bench-backends")
		h.Close()
	}
	progress("backends in a job namespace at %s, behind a veth and the job network policy", ip)
	return listen, closeAll, nil
}
