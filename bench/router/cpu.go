package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clock ticks per second of /proc's times (USER_HZ, 100 on every Linux
// architecture Go supports).
const userHZ = 100

func ticks(n int64) time.Duration { return time.Duration(n) * time.Second / userHZ }

// pidCPU is the user and system CPU time pid has used, threads included.
func pidCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	// After the comm: state(0) ppid pgrp session tty tpgid flags minflt
	// cminflt majflt cmajflt utime(11) stime(12).
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return ticks(u + st)
}

// groupCPU is pidCPU summed over process group pgid.
func groupCPU(pgid int) time.Duration {
	var d time.Duration
	for _, pid := range measuredPIDs(pgid) {
		d += pidCPU(pid)
	}
	return d
}

// machineCPU is the CPU time every CPU has spent busy (not idle or
// waiting for I/O) since boot, and the total.
func machineCPU() (busy, total time.Duration) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0
	}
	// user nice system idle iowait irq softirq steal guest guest_nice;
	// guest time is already counted in user.
	var sum, idle int64
	for i, v := range f[1:min(len(f), 9)] {
		n, _ := strconv.ParseInt(v, 10, 64)
		sum += n
		if i == 3 || i == 4 {
			idle += n
		}
	}
	return ticks(sum - idle), ticks(sum)
}

// cpuMeter tells, over one wrk run, the CPU time of the proxy under test
// and the share of the machine that processes other than this benchmark's
// (this process, the proxy, wrk) kept busy: on a shared machine, that is
// load the figures had to compete with.
type cpuMeter struct {
	pgid          int // the proxy's process group; 0 when there is none
	busy0, total0 time.Duration
	self0, proxy0 time.Duration
	sys0          int64
}

func startCPU(pgid int) *cpuMeter {
	m := &cpuMeter{pgid: pgid}
	m.busy0, m.total0 = machineCPU()
	m.self0 = pidCPU(os.Getpid())
	if pgid != 0 {
		m.proxy0 = groupCPU(pgid)
		m.sys0 = groupSyscalls(pgid)
	}
	return m
}

// stop returns the proxy's CPU time and read and write calls, and the
// others' share of the machine (0–1), given wrk's own CPU time.
func (m *cpuMeter) stop(wrkCPU time.Duration) (proxy time.Duration, syscalls int64, others float64) {
	busy, total := machineCPU()
	self := pidCPU(os.Getpid()) - m.self0
	if m.pgid != 0 {
		proxy = groupCPU(m.pgid) - m.proxy0
		syscalls = groupSyscalls(m.pgid) - m.sys0
	}
	if total <= m.total0 {
		return proxy, syscalls, 0
	}
	other := (busy - m.busy0) - self - proxy - wrkCPU
	return proxy, syscalls, max(0, float64(other)/float64(total-m.total0))
}

// groupSyscalls is the read and write system calls (syscr + syscw of
// /proc/<pid>/io) made so far by the processes of group pgid. Other calls
// (epoll_wait, futex) are not counted.
func groupSyscalls(pgid int) int64 {
	var n int64
	for _, pid := range measuredPIDs(pgid) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "syscr: "); ok {
				c, _ := strconv.ParseInt(v, 10, 64)
				n += c
			} else if v, ok := strings.CutPrefix(l, "syscw: "); ok {
				c, _ := strconv.ParseInt(v, 10, 64)
				n += c
			}
		}
	}
	return n
}
