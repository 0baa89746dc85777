package jobnet

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	goruntime "runtime"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// createNS makes a new network namespace and bind-mounts it at path. The
// work runs on a thread of its own that is thrown away afterwards, so no
// goroutine of the agent ever runs in the new namespace.
func createNS(path string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
	if err != nil {
		return fmt.Errorf("jobnet: namespace file: %w", err)
	}
	f.Close()
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: the goroutine ends with the thread locked, and
		// the runtime then ends the thread instead of reusing it.
		goruntime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("jobnet: unshare: %w", err)
			return
		}
		self := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
		if err := unix.Mount(self, path, "none", unix.MS_BIND, ""); err != nil {
			errc <- fmt.Errorf("jobnet: bind namespace: %w", err)
			return
		}
		errc <- nil
	}()
	if err := <-errc; err != nil {
		os.Remove(path)
		return err
	}
	return nil
}

// removeNS unmounts and removes a namespace file. The namespace itself, and
// the job's end of its veth pair with it, goes once no process uses it.
func removeNS(path string) error {
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("jobnet: unmount %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// inNS runs fn on a throwaway thread that has joined the namespace at path:
// netlink calls and /proc/sys/net writes in fn act on that namespace.
func inNS(path string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		goruntime.LockOSThread() // never unlocked: see createNS
		ns, err := netns.GetFromPath(path)
		if err != nil {
			errc <- fmt.Errorf("jobnet: open namespace: %w", err)
			return
		}
		defer ns.Close()
		if err := netns.Set(ns); err != nil {
			errc <- fmt.Errorf("jobnet: enter namespace: %w", err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// isNS reports whether path is a mounted network namespace (and not just
// the empty file left by a crash between create and mount).
func isNS(path string) bool {
	var st unix.Statfs_t
	return unix.Statfs(path, &st) == nil && st.Type == unix.NSFS_MAGIC
}

// ReleaseAll unmounts and removes every namespace file in dir, as a reboot
// would: for whoever removes a host (tests, an uninstall) once its jobs
// are gone. The interfaces go with the namespaces.
func ReleaseAll(dir string) {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		removeNS(filepath.Join(dir, e.Name()))
	}
}

// ListenTCP listens on addr inside the network namespace at path: for
// tests and benchmarks whose servers stand in for a job's.
func ListenTCP(path, addr string) (net.Listener, error) {
	var ln net.Listener
	err := inNS(path, func() (err error) {
		ln, err = net.Listen("tcp", addr)
		return err
	})
	return ln, err
}
