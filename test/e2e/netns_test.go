package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pierpaas/pier/host/agent"
	"github.com/pierpaas/pier/runtime"
)

// Every name this suite gives a kernel object (namespaces, links) starts
// with namePrefix, and every file lives under baseDir, so that a run killed
// before its cleanup can be swept by the next one without touching anything
// else on the machine.
const (
	namePrefix = "pe2e"
	bridgeName = namePrefix + "-br"
	// subnet is a private /24 unlikely to clash with a real network; the
	// bridge takes .1 in the root namespace, where the test process and
	// its load generator run.
	subnetPrefix = "10.213.0."
	bridgeIP     = subnetPrefix + "1"
	baseDir      = "/tmp/pier-e2e"
)

// run runs a command and returns an error with its output when it fails.
func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func nsPath(ns string) string { return "/run/netns/" + ns }

// inNetns returns argv that runs argv in network namespace ns. nsenter
// enters the network namespace only: `ip netns exec` would also give the
// process a private mount namespace with a fresh /sys, hiding the cgroup
// mounts runc needs and the job mounts the cleanup must see.
func inNetns(ns string, argv ...string) []string {
	return append([]string{"nsenter", "--net=" + nsPath(ns), "--"}, argv...)
}

// setupBridge makes the bridge that joins every node's namespace.
func setupBridge() error {
	if err := run("ip", "link", "add", bridgeName, "type", "bridge"); err != nil {
		return err
	}
	if err := run("ip", "addr", "add", bridgeIP+"/24", "dev", bridgeName); err != nil {
		return err
	}
	return run("ip", "link", "set", bridgeName, "up")
}

// addNetns makes namespace ns with address ip on the bridge: a veth pair
// whose root end (named ns too) is a bridge port, and whose other end is
// the namespace's eth0.
func addNetns(ns, ip string) error {
	steps := [][]string{
		{"ip", "netns", "add", ns},
		{"ip", "link", "add", ns, "type", "veth", "peer", "name", "eth0", "netns", ns},
		{"ip", "link", "set", ns, "master", bridgeName, "up"},
		{"ip", "-n", ns, "addr", "add", ip + "/24", "dev", "eth0"},
		{"ip", "-n", ns, "link", "set", "eth0", "up"},
		{"ip", "-n", ns, "link", "set", "lo", "up"},
	}
	for _, s := range steps {
		if err := run(s[0], s[1:]...); err != nil {
			return err
		}
	}
	return nil
}

// netnsPIDs lists the processes whose network namespace is ns: on a node
// that is every process of it, daemons, shims and containers alike, since
// jobs share their host's network.
func netnsPIDs(ns string) []int {
	var want syscall.Stat_t
	if err := syscall.Stat(nsPath(ns), &want); err != nil {
		return nil
	}
	// A host's jobs run in namespaces of their own, which are the node's
	// as much as its own: a power cut takes them too.
	jobNS := map[[2]uint64]bool{}
	dataDir := filepath.Join(baseDir, strings.TrimPrefix(ns, namePrefix+"-"), "data")
	files, _ := os.ReadDir(agent.NetNSDir(dataDir))
	for _, f := range files {
		var st syscall.Stat_t
		if syscall.Stat(filepath.Join(agent.NetNSDir(dataDir), f.Name()), &st) == nil {
			jobNS[[2]uint64{st.Dev, st.Ino}] = true
		}
	}
	self := os.Getpid()
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		var st syscall.Stat_t
		if syscall.Stat("/proc/"+e.Name()+"/ns/net", &st) == nil && (st.Ino == want.Ino && st.Dev == want.Dev || jobNS[[2]uint64{st.Dev, st.Ino}]) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// killNetns kills every process of the namespaces at once, as a power
// cut would: all are stopped first, so no supervisor sees its child die
// and restarts it, then all are killed; repeated until none is left.
func killNetns(nss ...string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		var pids []int
		for _, ns := range nss {
			pids = append(pids, netnsPIDs(ns)...)
		}
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes %v of %v survive SIGKILL", pids, nss)
		}
		for _, p := range pids {
			syscall.Kill(p, syscall.SIGSTOP)
		}
		for _, p := range pids {
			syscall.Kill(p, syscall.SIGKILL)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// partition cuts namespace ns off from the given addresses in both
// directions; heal undoes it. The rules live in ns, so deleting the
// namespace removes them too.
func partition(ns string, addrs []string) error {
	for _, a := range addrs {
		for _, rule := range [][]string{{"INPUT", "-s", a}, {"OUTPUT", "-d", a}} {
			argv := inNetns(ns, "iptables", "-w", "-I", rule[0], rule[1], rule[2], "-j", "DROP")
			if err := run(argv[0], argv[1:]...); err != nil {
				return err
			}
		}
	}
	return nil
}

func heal(ns string) error {
	for _, chain := range []string{"INPUT", "OUTPUT"} {
		argv := inNetns(ns, "iptables", "-w", "-F", chain)
		if err := run(argv[0], argv[1:]...); err != nil {
			return err
		}
	}
	return nil
}

func unmountAll(dir string) {
	runtime.UnmountUnder(dir)
}

// sweep removes whatever a previous run left: processes in our
// namespaces, the namespaces, links, runc containers, mounts and files.
// It runs before a cluster is made and after it is torn down.
func sweep() {
	nss, _ := filepath.Glob(nsPath(namePrefix + "-*"))
	for _, p := range nss {
		killNetns(filepath.Base(p))
	}
	// Shims and containers whose namespace is already gone are found by
	// their directories.
	hostDirs, _ := filepath.Glob(filepath.Join(baseDir, "h*", "data"))
	for _, d := range hostDirs {
		cleanupHostDir(d)
	}
	for _, p := range nss {
		run("ip", "netns", "delete", filepath.Base(p))
	}
	if out, err := exec.Command("ip", "-o", "link", "show").Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
			if strings.HasPrefix(name, namePrefix+"-") {
				run("ip", "link", "delete", name)
			}
		}
	}
	unmountAll(baseDir)
	os.RemoveAll(baseDir)
}
