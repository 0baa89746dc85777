package jobnet

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
)

// testHost opens a job network in the test machine's own namespace, under
// a random tag and subnet, and removes everything it made at the end.
func testHost(t *testing.T) *Host {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("jobnet tests need root (network namespaces, nftables)")
	}
	dir := t.TempDir()
	n := rand.IntN(200) + 20
	h, err := Open(Config{
		Subnet:   netip.MustParsePrefix(fmt.Sprintf("10.251.%d.0/24", n)),
		Cluster:  netip.MustParsePrefix("10.251.0.0/16"),
		StateDir: filepath.Join(dir, "netns"),
		Tag:      fmt.Sprintf("%04x", rand.IntN(1<<16)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ids, _ := h.Attached()
		for _, id := range ids {
			if err := h.Detach(id); err != nil {
				t.Error(err)
			}
		}
		if err := h.Close(); err != nil {
			t.Error(err)
		}
	})
	return h
}

func (h *Host) jobAddr(i int) netip.Addr {
	a := h.gw
	for range i {
		a = a.Next()
	}
	return a
}

// listenIn listens on addr inside the namespace at path and accepts (and
// closes) connections until the test ends.
func listenIn(t *testing.T, path, addr string) {
	t.Helper()
	var ln net.Listener
	if err := inNS(path, func() (err error) { ln, err = net.Listen("tcp", addr); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
}

// dialFrom connects from inside the namespace at path ("" for the host).
// A dropped packet shows as a timeout, so the bound keeps a denial short.
func dialFrom(path, addr string) error {
	dial := func() error {
		c, err := net.DialTimeout("tcp", addr, 700*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err
	}
	if path == "" {
		return dial()
	}
	return inNS(path, dial)
}

func TestJobNetworksAndPolicy(t *testing.T) {
	h := testHost(t)
	a1, a2, b1 := h.jobAddr(1), h.jobAddr(2), h.jobAddr(3)
	paths := map[string]string{}
	for id, ip := range map[string]netip.Addr{"a1": a1, "a2": a2, "b1": b1} {
		p, err := h.Attach(id, ip)
		if err != nil {
			t.Fatal(err)
		}
		paths[id] = p
	}
	rules := Rules{
		Local:     map[netip.Addr]LocalJob{a1: {App: "alpha"}, a2: {App: "alpha"}, b1: {App: "beta"}},
		Endpoints: map[netip.Addr]string{a1: "alpha", a2: "alpha", b1: "beta"},
		Nodes:     []netip.Addr{netip.MustParseAddr("192.0.2.201")},
	}
	if err := h.Apply(rules); err != nil {
		t.Fatal(err)
	}
	target := net.JoinHostPort(a1.String(), "8080")
	listenIn(t, paths["a1"], target)

	// A service on the host, on every address, which no job may reach.
	hostLn, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer hostLn.Close()
	hostSvc := net.JoinHostPort(h.gw.String(), fmt.Sprint(hostLn.Addr().(*net.TCPAddr).Port))

	if err := dialFrom("", target); err != nil {
		t.Errorf("host to job: %v", err)
	}
	if err := dialFrom(paths["a2"], target); err != nil {
		t.Errorf("same app: %v", err)
	}
	if err := dialFrom(paths["b1"], target); err == nil {
		t.Error("another app's job reached alpha's job")
	}
	if err := dialFrom(paths["b1"], hostSvc); err == nil {
		t.Error("a job reached a service of its host")
	}

	rules.Allow = map[string][]string{"alpha": {"beta"}}
	if err := h.Apply(rules); err != nil {
		t.Fatal(err)
	}
	if err := dialFrom(paths["b1"], target); err != nil {
		t.Errorf("beta allowed to alpha: %v", err)
	}
	rules.Allow = nil
	if err := h.Apply(rules); err != nil {
		t.Fatal(err)
	}
	if err := dialFrom(paths["b1"], target); err == nil {
		t.Error("beta reached alpha after its access was removed")
	}

	// Attach again (an agent restart) keeps the namespace; Detach
	// removes the interfaces and the file.
	if p, err := h.Attach("a1", a1); err != nil || p != paths["a1"] {
		t.Fatalf("re-attach: %q %v", p, err)
	}
	if err := dialFrom(paths["a2"], target); err != nil {
		t.Errorf("after re-attach: %v", err)
	}
	if err := h.Detach("b1"); err != nil {
		t.Fatal(err)
	}
	if _, err := netlink.LinkByName(h.hostIf("b1")); err == nil {
		t.Error("b1's veth is still there")
	}
	if _, err := os.Stat(paths["b1"]); !os.IsNotExist(err) {
		t.Errorf("b1's namespace file: %v", err)
	}
}
