package volume

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Ensure makes volume id if it does not exist yet (a sparse image of
// sizeMB, formatted ext4, its root owned by uid:gid), mounts it if it is
// not mounted, and returns where. A volume that exists keeps its size
// and data; if its root belongs to another uid (the app's jobs used to
// run as another user), what that uid owned in it is given to uid:gid,
// once (see reown).
func (m *Manager) Ensure(id string, sizeMB int64, uid, gid int) (string, error) {
	if err := checkID(id); err != nil {
		return "", err
	}
	if sizeMB <= 0 {
		return "", fmt.Errorf("volume %s: size %d MB", id, sizeMB)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := os.MkdirAll(m.Dir, 0o700); err != nil {
		return "", err
	}
	created := false
	if _, err := os.Stat(m.ImagePath(id)); errors.Is(err, os.ErrNotExist) {
		if err := m.create(id, sizeMB, uid, gid); err != nil {
			return "", err
		}
		created = true
	} else if err != nil {
		return "", err
	}
	if err := m.mount(id); err != nil {
		return "", err
	}
	mnt := m.MountPath(id)
	if created {
		// An empty volume is empty: initdb and friends refuse a data
		// directory holding lost+found (e2fsck makes it again if it
		// ever needs it).
		os.Remove(filepath.Join(mnt, "lost+found"))
	}
	n, err := reown(mnt, uid, gid)
	if err != nil {
		return "", fmt.Errorf("volume %s: %w", id, err)
	}
	if n > 0 && !created && m.Log != nil {
		m.Log.Info("volume given to its job's uid", "volume", id, "uid", uid, "gid", gid, "entries", n)
	}
	return mnt, nil
}

// create makes the image under a temporary name and renames it into
// place once formatted, so that a crash halfway leaves no image that
// looks made.
func (m *Manager) create(id string, sizeMB int64, uid, gid int) error {
	img := m.ImagePath(id)
	tmp := img + ".new"
	os.Remove(tmp)
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("volume %s: %w", id, err)
	}
	// Sparse: the host's disk pays only for what is written.
	err = f.Truncate(sizeMB << 20)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("volume %s: %w", id, err)
	}
	// Fixed arguments, no shell; the only variable parts are numbers and
	// a path made of a checked id. -m 0: no blocks reserved for root, the
	// cap is the job's to use.
	cmd := exec.Command("mkfs.ext4", "-q", "-F", "-m", "0",
		"-E", "root_owner="+strconv.Itoa(uid)+":"+strconv.Itoa(gid), tmp)
	if out, err := cmd.CombinedOutput(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("volume %s: mkfs.ext4: %v: %s", id, err, strings.TrimSpace(string(out)))
	}
	if err := os.Rename(tmp, img); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("volume %s: %w", id, err)
	}
	return syncDir(m.Dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Mount mounts volume id's image at its mount point, unless it is
// mounted already (the agent restarted): what an agent does for every
// volume after a reboot, before it relaunches jobs.
func (m *Manager) Mount(id string) error {
	if err := checkID(id); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.mount(id)
}

func (m *Manager) mount(id string) error {
	mnt := m.MountPath(id)
	// Unmounted, the mount point is root's and closed to everyone: a job
	// started against it by mistake fails instead of writing to the
	// host's disk.
	if err := os.Mkdir(mnt, 0); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("volume %s: %w", id, err)
	}
	if ok, err := Mounted(mnt); err != nil || ok {
		return err
	}
	dev, err := attachLoop(m.ImagePath(id))
	if err != nil {
		return fmt.Errorf("volume %s: %w", id, err)
	}
	// The device detaches itself (autoclear) once unmounted, or now if
	// the mount fails and dev is closed.
	defer dev.Close()
	if err := unix.Mount(dev.Name(), mnt, "ext4", unix.MS_NOSUID|unix.MS_NODEV, ""); err != nil {
		return fmt.Errorf("volume %s: mount %s: %w", id, dev.Name(), err)
	}
	return nil
}

// attachLoop binds a free loop device to the image, set to detach itself
// when its last user (the mount) lets go.
func attachLoop(image string) (*os.File, error) {
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer ctl.Close()
	img, err := os.OpenFile(image, os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer img.Close()
	// Another process may take the free device between asking and
	// binding; then ask again.
	for range 50 {
		n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
		if err != nil {
			return nil, fmt.Errorf("loop-control: %w", err)
		}
		dev, err := os.OpenFile("/dev/loop"+strconv.Itoa(n), os.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, err
		}
		cfg := unix.LoopConfig{Fd: uint32(img.Fd())}
		cfg.Info.Flags = unix.LO_FLAGS_AUTOCLEAR
		copy(cfg.Info.File_name[:len(cfg.Info.File_name)-1], image)
		err = unix.IoctlLoopConfigure(int(dev.Fd()), &cfg)
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOTTY) {
			// Before Linux 5.8: bind, then set the flags.
			if err = unix.IoctlSetInt(int(dev.Fd()), unix.LOOP_SET_FD, int(img.Fd())); err == nil {
				if err = unix.IoctlLoopSetStatus64(int(dev.Fd()), &cfg.Info); err != nil {
					unix.IoctlSetInt(int(dev.Fd()), unix.LOOP_CLR_FD, 0)
				}
			}
		}
		if err == nil {
			return dev, nil
		}
		dev.Close()
		if !errors.Is(err, unix.EBUSY) {
			return nil, fmt.Errorf("loop %d: %w", n, err)
		}
	}
	return nil, errors.New("no free loop device")
}

// Unmount unmounts volume id, if it is mounted; its loop device goes
// with it. Jobs that still run keep their own mount of it.
func (m *Manager) Unmount(id string) error {
	if err := checkID(id); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.unmount(id)
}

func (m *Manager) unmount(id string) error {
	mnt := m.MountPath(id)
	for {
		ok, err := Mounted(mnt)
		if err != nil || !ok {
			return err
		}
		if err := unix.Unmount(mnt, 0); err != nil && !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("volume %s: unmount: %w", id, err)
		}
	}
}

// Remove unmounts volume id and deletes its image and mount point: its
// data is gone. Removing a volume that is not here is no error.
func (m *Manager) Remove(id string) error {
	if err := checkID(id); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.unmount(id); err != nil {
		return err
	}
	for _, p := range []string{m.MountPath(id), m.ImagePath(id), m.ImagePath(id) + ".new"} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("volume %s: %w", id, err)
		}
	}
	if err := syncDir(m.Dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// MountAll mounts every volume here that is not mounted.
func (m *Manager) MountAll() error {
	ids, err := m.List()
	for _, id := range ids {
		err = errors.Join(err, m.Mount(id))
	}
	return err
}

// UnmountAll unmounts every volume here, keeping their data: for whoever
// takes a host down for good (tests, an uninstall).
func (m *Manager) UnmountAll() error {
	ids, err := m.List()
	for _, id := range ids {
		err = errors.Join(err, m.Unmount(id))
	}
	return err
}

// Mounted reports whether something is mounted at path in this process's
// mount namespace.
func Mounted(path string) (bool, error) {
	path, err := filepath.Abs(path)
	if err != nil {
		return false, err
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && unescape(fields[4]) == path {
			return true, nil
		}
	}
	return false, sc.Err()
}

// unescape undoes mountinfo's octal escapes (\040 for a space).
func unescape(s string) string {
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
