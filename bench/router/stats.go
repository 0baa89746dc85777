package main

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/pierpaas/pier/discovery"
)

func newRegistry(m *etcdMember) *discovery.Registry { return discovery.New(m.cli) }

func instance(id, addr string) discovery.Instance {
	return discovery.Instance{ID: id, Addr: addr, Proto: "http"}
}

// rank is the nearest-rank percentile of sorted s.
func rank(s []time.Duration, p float64) time.Duration {
	i := int(math.Ceil(float64(len(s))*p-1e-9)) - 1
	return s[max(0, min(i, len(s)-1))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// machine describes the CPU, the OS and the Go version, for the report.
func machine() string {
	cpu := "unknown CPU"
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.Join(strings.Fields(v), " ")
				break
			}
		}
		f.Close()
	}
	osName := "Linux"
	if b, err := os.ReadFile("/etc/os-release"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "PRETTY_NAME="); ok {
				osName = strings.Trim(v, `"`)
			}
		}
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return fmt.Sprintf("%d CPU(s) (%s), %s, kernel %s, %s", runtime.NumCPU(), cpu, osName,
		strings.TrimSpace(string(kernel)), runtime.Version())
}

// toolVersion is the first line a tool prints for its version flag.
func toolVersion(name, flag string) string {
	bin, err := lookTool(name)
	if err != nil {
		return name + " (not found)"
	}
	out, _ := exec.Command(bin, flag).CombinedOutput()
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	line = strings.TrimPrefix(line, "nginx version: ")
	if i := strings.Index(line, " - "); i > 0 { // HAProxy's release date and URL
		line = line[:i]
	}
	return line
}
