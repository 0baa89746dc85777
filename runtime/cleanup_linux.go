package runtime

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Delete removes a job in an order that works from any point a crash may
// have left it at: runc's view first (kill, delete state and cgroups), then
// whatever runc no longer knows about (processes in our cgroups, the cgroup
// directories, mounts under the bundle), and the bundle directory last, so
// that a job with anything left is still in List.
func (r *Runc) Delete(id string) error {
	if !ValidID(id) {
		return fmt.Errorf("%w: id %q", ErrInvalidSpec, id)
	}
	var errs []error
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if out, err := r.runc(ctx, "", "delete", "--force", id); err != nil && !notRunning(out) {
		errs = append(errs, fmt.Errorf("runc delete: %w", r.runcError("", out, err)))
	}
	if err := removeCgroups(id); err != nil {
		errs = append(errs, err)
	}
	dir := r.bundle(id)
	if err := UnmountUnder(dir); err != nil {
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("runtime: delete %s: %w", id, err)
	}
	return nil
}

// oomKilled reports whether the kernel's OOM killer killed a process of
// the job, from the counter of its memory cgroup, which must still exist.
func (r *Runc) oomKilled(id string, ex Exit) bool {
	mounts, err := cgroupMounts()
	if err != nil {
		return false
	}
	if dir, ok := v1Controller(mounts, "memory"); ok {
		dir = filepath.Join(dir, cgroupPath(id))
		if n, ok := readCounter(filepath.Join(dir, "memory.oom_control"), "oom_kill"); ok {
			return n > 0
		}
		// Kernels before 4.13 do not count kills; hitting the limit and
		// dying of SIGKILL is the best evidence they leave.
		b, err := os.ReadFile(filepath.Join(dir, "memory.failcnt"))
		n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil && n > 0 && ex.Signal == "SIGKILL"
	}
	for _, m := range mounts {
		if m.v2 {
			n, _ := readCounter(filepath.Join(m.dir, cgroupPath(id), "memory.events"), "oom_kill")
			return n > 0
		}
	}
	return false
}

// readCounter reads "key N" from a flat-keyed cgroup file.
func readCounter(file, key string) (int64, bool) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, false
	}
	for line := range strings.Lines(string(b)) {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), " "); ok && k == key {
			n, err := strconv.ParseInt(v, 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

type cgroupMount struct {
	dir         string
	v2          bool
	controllers []string // v1 only
}

// cgroupMounts lists the mounted cgroup hierarchies, v1 and v2 alike, so
// that cleanup finds the job's directories on pure v1, hybrid and pure v2
// hosts without assuming where they are mounted.
func cgroupMounts() ([]cgroupMount, error) {
	var out []cgroupMount
	err := eachMount(func(mountPoint, fsType, superOpts string) {
		switch fsType {
		case "cgroup2":
			out = append(out, cgroupMount{dir: mountPoint, v2: true})
		case "cgroup":
			out = append(out, cgroupMount{dir: mountPoint, controllers: strings.Split(superOpts, ",")})
		}
	})
	return out, err
}

func v1Controller(mounts []cgroupMount, name string) (string, bool) {
	for _, m := range mounts {
		if !m.v2 && slices.Contains(m.controllers, name) {
			return m.dir, true
		}
	}
	return "", false
}

// removeCgroups kills any process left in the job's cgroups and removes
// them. The processes are frozen first, where a freezer exists, so that a
// fork bomb cannot outrun the killing.
func removeCgroups(id string) error {
	mounts, err := cgroupMounts()
	if err != nil {
		return err
	}
	var dirs []string
	for _, m := range mounts {
		d := filepath.Join(m.dir, cgroupPath(id))
		if _, err := os.Stat(d); err == nil && !slices.Contains(dirs, d) {
			dirs = append(dirs, d)
		}
	}
	if len(dirs) == 0 {
		return nil
	}
	freeze := func(bool) {}
	if f, ok := v1Controller(mounts, "freezer"); ok {
		state := filepath.Join(f, cgroupPath(id), "freezer.state")
		freeze = func(on bool) {
			_ = os.WriteFile(state, []byte(map[bool]string{true: "FROZEN", false: "THAWED"}[on]), 0)
		}
	} else {
		for _, m := range mounts {
			if m.v2 {
				file := filepath.Join(m.dir, cgroupPath(id), "cgroup.freeze")
				freeze = func(on bool) { _ = os.WriteFile(file, []byte(map[bool]string{true: "1", false: "0"}[on]), 0) }
			}
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		freeze(true)
		for _, d := range dirs {
			killAll(d)
		}
		freeze(false) // killed tasks die once thawed
		var errs []error
		for _, d := range dirs {
			if err := removeTree(d); err != nil {
				errs = append(errs, err)
			}
		}
		if len(errs) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("remove cgroups: %w", errors.Join(errs...))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// killAll sends SIGKILL to every process in the cgroup dir and below it.
func killAll(dir string) {
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		b, _ := os.ReadFile(filepath.Join(p, "cgroup.procs"))
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil && pid > 0 {
				_ = unix.Kill(pid, unix.SIGKILL)
			}
		}
		return nil
	})
}

// removeTree removes a cgroup directory and any below it, deepest first:
// cgroupfs only allows rmdir, of empty groups.
func removeTree(dir string) error {
	var dirs []string
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	for _, d := range slices.Backward(dirs) {
		if err := unix.Rmdir(d); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("rmdir %s: %w", d, err)
		}
	}
	return nil
}

// MountsUnder lists the mount points at or below dir, in the order they
// were mounted (so each one after any it is mounted over).
func MountsUnder(dir string) ([]string, error) {
	var points []string
	err := eachMount(func(mp, _, _ string) {
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			points = append(points, mp)
		}
	})
	return points, err
}

// UnmountUnder unmounts everything mounted at or below dir, topmost first.
// A mount that is busy is detached instead, which is enough for the bundle
// to be removed; its memory goes when the last user lets go.
func UnmountUnder(dir string) error {
	for range 10 {
		points, err := MountsUnder(dir)
		if err != nil {
			return err
		}
		if len(points) == 0 {
			return nil
		}
		// mountinfo lists mounts in the order they were made, so the last
		// one is on top of anything it shadows.
		for _, mp := range slices.Backward(points) {
			if err := unix.Unmount(mp, 0); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
				if err := unix.Unmount(mp, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
					return fmt.Errorf("unmount %s: %w", mp, err)
				}
			}
		}
	}
	return fmt.Errorf("mounts under %s keep coming back", dir)
}

// eachMount calls fn for each mount of this process's mount namespace.
func eachMount(fn func(mountPoint, fsType, superOpts string)) error {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		// id parent major:minor root mountpoint opts [optional...] - type source superopts
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		a, b := strings.Fields(pre), strings.Fields(post)
		if len(a) < 5 || len(b) < 3 {
			continue
		}
		fn(unescapeMount(a[4]), b[0], b[2])
	}
	return sc.Err()
}

// unescapeMount undoes mountinfo's octal escapes (\040 for space and so on).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
