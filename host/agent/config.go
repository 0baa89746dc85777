package agent

import (
	"bufio"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/internal/diskguard"
	"github.com/pierpaas/pier/runtime"
)

// DefaultAPIPort is the host agent's API port.
const DefaultAPIPort = 7301

// Config configures a host agent.
type Config struct {
	ID      string // host id; the host name by default
	DataDir string
	// AdvertiseIP is where jobs' ports and the agent's API are reached.
	AdvertiseIP string
	APIPort     int
	// Servers are the API addresses (host:port) of servers to join; with
	// Token they are needed on the first start only.
	Servers []string
	Token   string
	// Endpoints and CredentialsDir, when set, skip the join: the agent
	// uses these etcd endpoints and the credentials in that directory
	// (in-process clusters for tests).
	Endpoints      []string
	CredentialsDir string
	Tags           map[string]string
	// CPUMillis and MemoryMB offered to jobs; detected when zero.
	CPUMillis, MemoryMB int64
	// Runtime names the container driver ("runc" or "process"); Launcher
	// and RuntimeImpl override how shims run (tests use the fake runtime
	// in-process).
	Runtime     string
	RuntimeImpl runtime.Runtime
	Launcher    Launcher
	// PierBinary is the pier executable bound read-only at api.PierBinary
	// in every container (the builder and slug runner are subcommands of
	// it); with the runc runtime it is the running executable by default.
	PierBinary string
	// ShimSocketDir holds the shims' sockets; it must be a short path.
	ShimSocketDir string
	// PortLow and PortHigh bound the ports allocated to jobs.
	PortLow, PortHigh int
	// LeaseTTL is how long the host outlives a silent agent.
	LeaseTTL time.Duration
	Version  string
	Log      *slog.Logger
	// Network is "job" (every job in a network namespace of its own, the
	// default with runc as root) or "host" (jobs share the host's network
	// and get host ports: other runtimes, and hosts that cannot have it).
	Network string
	// JobNetwork is the cluster range of job subnets (api.DefaultJobNetwork);
	// every node of a cluster must use the same.
	JobNetwork string
	// AllowHostNetwork lets process types that ask for the host's network
	// (api.ProcessType.HostNetwork) run here; refused otherwise.
	AllowHostNetwork bool
	// Disk watches the data directory's disk (the agent makes its own
	// when nil; `pier up` shares the server's, on the same disk).
	Disk *diskguard.Guard
}

// The default range of host ports allocated to jobs.
const (
	DefaultPortLow  = 21000
	DefaultPortHigh = 32000
)

func (c *Config) setDefaults() error {
	if c.DataDir == "" {
		return errors.New("agent: no data directory")
	}
	if c.ID == "" {
		h, _ := os.Hostname()
		c.ID = strings.Trim(strings.ToLower(strings.Split(h, ".")[0]), "-")
	}
	if !api.ValidID(c.ID) {
		return fmt.Errorf("agent: host id %q must be lower-case letters, digits and dashes", c.ID)
	}
	if c.AdvertiseIP == "" {
		c.AdvertiseIP = "127.0.0.1"
	}
	if ip := net.ParseIP(c.AdvertiseIP); ip == nil || ip.IsUnspecified() {
		return fmt.Errorf("agent: advertise address %q must be a concrete IP", c.AdvertiseIP)
	}
	if c.APIPort == 0 {
		c.APIPort = DefaultAPIPort
	}
	if c.PortLow == 0 {
		// Below Linux's ephemeral ports (32768-60999), which any
		// process's outgoing connections take, and above the routers' TCP
		// route ports (20000-20999), as Nomad's dynamic ports are.
		c.PortLow, c.PortHigh = DefaultPortLow, DefaultPortHigh
	}
	if c.PortLow > c.PortHigh || c.PortLow < 1 || c.PortHigh > 65535 {
		return fmt.Errorf("agent: bad port range %d-%d", c.PortLow, c.PortHigh)
	}
	if c.LeaseTTL == 0 {
		c.LeaseTTL = 5 * time.Second
	}
	if c.Runtime == "" {
		c.Runtime = "runc"
	}
	if c.Network == "" {
		c.Network = "host"
		if c.Runtime == "runc" && c.RuntimeImpl == nil && os.Geteuid() == 0 {
			c.Network = "job"
		}
	}
	if c.Network != "job" && c.Network != "host" {
		return fmt.Errorf("agent: network %q: want job or host", c.Network)
	}
	if c.JobNetwork == "" {
		c.JobNetwork = api.DefaultJobNetwork
	}
	if p, err := netip.ParsePrefix(c.JobNetwork); err != nil || !p.Addr().Is4() || p.Bits() > api.JobSubnetBits {
		return fmt.Errorf("agent: job network %q: want an IPv4 range of /%d or wider", c.JobNetwork, api.JobSubnetBits)
	}
	if c.PierBinary == "" && c.Runtime == "runc" && c.RuntimeImpl == nil {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("agent: find the pier executable: %w", err)
		}
		c.PierBinary = exe
	}
	if c.ShimSocketDir == "" {
		c.ShimSocketDir = filepath.Join("/run/pier/shims", shortHash(c.DataDir))
	}
	if c.CPUMillis == 0 {
		c.CPUMillis = int64(goruntime.NumCPU()) * 1000
	}
	if c.MemoryMB == 0 {
		c.MemoryMB = detectMemoryMB()
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	if c.Launcher == nil {
		if c.RuntimeImpl != nil {
			c.Launcher = InProcessLauncher{Runtime: c.RuntimeImpl, Log: c.Log}
		} else {
			c.Launcher = ExecLauncher{}
		}
	}
	return nil
}

func (c *Config) pkiDir() string {
	if c.CredentialsDir != "" {
		return c.CredentialsDir
	}
	return filepath.Join(c.DataDir, "pki")
}
func (c *Config) jobsDir() string    { return filepath.Join(c.DataDir, "jobs") }
func (c *Config) runtimeDir() string { return filepath.Join(c.DataDir, "runtime") }
func (c *Config) artifactDir() string {
	return filepath.Join(c.DataDir, "artifacts")
}
func (c *Config) statePath() string { return filepath.Join(c.DataDir, "host.db") }
func (c *Config) joinPath() string  { return filepath.Join(c.DataDir, "host.json") }
func (c *Config) apiAddr() string {
	return net.JoinHostPort(c.AdvertiseIP, strconv.Itoa(c.APIPort))
}

// detectMemoryMB reads MemTotal from /proc/meminfo.
func detectMemoryMB() int64 {
	if total, _ := memInfoMB(); total > 0 {
		return total
	}
	return 1024
}

// memInfoMB reads the machine's total and available memory from
// /proc/meminfo (0, 0 when it cannot).
func memInfoMB() (total, available int64) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(fields[1], 10, 64)
		switch fields[0] {
		case "MemTotal:":
			total = kb / 1024
		case "MemAvailable:":
			available = kb / 1024
		}
	}
	return total, available
}
