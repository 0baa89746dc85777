package runtime

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// A job's bundle, StateDir/<id>:
//
//	config.json   the OCI config
//	runc.log      runc's own log, where its errors are read from
//	pid           the container's pid on the host, written by runc
//	disk/         tmpfs of size DiskMB: everything the job can write
//	  upper/ work/  the root overlay's upper layer and work dir
//	  app-upper/ app-work/  the same for /app, if Writable
//	  tmp/          bound at /tmp
//	  etc/          generated hosts, hostname, resolv.conf, bound into /etc
//	rootfs/       the overlay: lower = the image layers or the stack's
//	              skeleton, which jobs share (see stack_linux.go)
//	app/          overlay with lower = AppDir, if Writable
//
// Everything under disk/ lives in memory and dies with its unmount, which
// is what makes Delete cheap and the cap exact.

// prepare builds the job's bundle in dir, which exists and is empty.
func (r *Runc) prepare(s Spec, dir string) error {
	disk := filepath.Join(dir, "disk")
	if err := os.Mkdir(disk, 0o700); err != nil {
		return err
	}
	opts := fmt.Sprintf("size=%dm,mode=0755", s.Limits.DiskMB)
	if err := unix.Mount("tmpfs", disk, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		return fmt.Errorf("runtime: mount job tmpfs: %w", err)
	}
	p := bundlePaths{etc: filepath.Join(disk, "etc"), tmp: filepath.Join(disk, "tmp")}
	for _, d := range []string{"upper", "work", "tmp", "etc"} {
		if err := os.Mkdir(filepath.Join(disk, d), 0o755); err != nil {
			return err
		}
	}
	if err := os.Chmod(p.tmp, 0o777|fs.ModeSticky); err != nil {
		return err
	}
	resolv, err := resolvConf(s.Nameservers)
	if err != nil {
		return err
	}
	files := map[string]string{
		"hosts": "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n" +
			"127.0.1.1\t" + s.Hostname + "\n",
		"hostname":    s.Hostname + "\n",
		"resolv.conf": resolv,
	}
	if err := writeFiles(p.etc, files); err != nil {
		return err
	}
	if p.users, err = stackUsers(s, p.etc); err != nil {
		return err
	}

	lower := make([]string, 0, max(len(s.RootFS), 1))
	if len(s.RootFS) == 0 {
		stack, binds, err := r.stack()
		if err != nil {
			return fmt.Errorf("runtime: build stack: %w", err)
		}
		p.hostBinds = binds
		lower = append(lower, stack)
	} else {
		// overlayfs lists the topmost layer first.
		for _, l := range slices.Backward(s.RootFS) {
			if fi, err := os.Stat(l); err != nil || !fi.IsDir() {
				return fmt.Errorf("%w: rootfs layer %s is not a directory", ErrInvalidSpec, l)
			}
			lower = append(lower, l)
		}
	}

	if err := overlay(filepath.Join(dir, "rootfs"), lower, filepath.Join(disk, "upper"), filepath.Join(disk, "work")); err != nil {
		return err
	}
	p.app = s.AppDir
	if s.AppDir != "" && s.Writable {
		// The artifact is shared by every job of the release: writes go to
		// an upper layer of the job's own.
		p.app = filepath.Join(dir, "app")
		for _, d := range []string{"app-upper", "app-work"} {
			if err := os.Mkdir(filepath.Join(disk, d), 0o755); err != nil {
				return err
			}
		}
		// The app user owns what it may write, as on Heroku.
		uid, gid := s.user()
		if err := os.Chown(filepath.Join(disk, "app-upper"), uid, gid); err != nil {
			return err
		}
		if err := overlay(p.app, []string{s.AppDir}, filepath.Join(disk, "app-upper"), filepath.Join(disk, "app-work")); err != nil {
			return err
		}
	}

	config, err := json.Marshal(r.ociSpec(s, p))
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "config.json"), config, 0o600)
}

// overlay mounts an overlayfs at dir, which it creates.
func overlay(dir string, lower []string, upper, work string) error {
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", strings.Join(lower, ":"), upper, work)
	if len(opts) >= os.Getpagesize() {
		// mount(2) takes at most a page of options.
		return fmt.Errorf("%w: %d layers make overlay options too long", ErrInvalidSpec, len(lower))
	}
	if err := unix.Mount("overlay", dir, "overlay", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		return fmt.Errorf("runtime: mount overlay on %s: %w", dir, err)
	}
	return nil
}

func writeFiles(dir string, files map[string]string) error {
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// resolvConf is the job's /etc/resolv.conf: its own nameservers, or else
// the host's file as it is.
func resolvConf(nameservers []string) (string, error) {
	if len(nameservers) > 0 {
		var b strings.Builder
		for _, ns := range nameservers {
			b.WriteString("nameserver " + ns + "\n")
		}
		return b.String(), nil
	}
	resolv, err := os.ReadFile("/etc/resolv.conf")
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	return string(resolv), nil
}
