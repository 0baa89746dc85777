package runtime

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The stack is the root file system of a job that brings no image: the
// host's /usr (and /lib*, /bin, /sbin) bound read-only over a skeleton with
// a generated /etc. The skeleton does not depend on the job (the per-job
// files in /etc are bound over it), so one copy on disk,
// StateDir/.stack/<key>, is the overlay's lower layer for every job, and is
// built only when the host's files it is made from change: building it
// takes tens of milliseconds, most of a container start. The key hashes
// their names, types and modification times, never their contents, so
// computing it costs a few stat calls and two directory reads.

// stackDirs are the host directories a stack job sees, read-only, at the
// same path. On merged-/usr systems all but /usr are symlinks into it, and
// are recreated as symlinks instead.
var stackDirs = []string{"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"}

// hostEtc are the files copied from the host's /etc into the stack's. They
// are public and static, and programs break in confusing ways without them:
// the dynamic loader's cache, CA certificates (and OpenSSL's config), the
// services and protocols databases, the time zone, os-release (buildpacks
// detect the stack by it), and Debian's alternatives, the symlinks that
// commands like awk and which in /usr/bin go through. Directories are copied
// one level deep, regular files and symlinks only, and only what anyone on
// the host may read. The rest of the host's /etc never reaches a job.
var hostEtc = []string{
	"ld.so.cache", "ssl/certs", "ssl/openssl.cnf", "services", "protocols",
	"localtime", "timezone", "os-release", "debian_version", "alternatives",
}

const (
	etcPasswd = "root:x:0:0:root:/root:/bin/sh\n" +
		"app:x:1000:1000:app:/app:/bin/sh\n" +
		"nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
	etcGroup = "root:x:0:\n" +
		"tty:x:5:\n" +
		"app:x:1000:\n" +
		"nogroup:x:65534:\n"
	etcNsswitch = "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n" +
		"networks: files\nprotocols: files\nservices: files\nethers: files\nrpc: files\n"
	// stackVersion changes whenever buildStack makes something different
	// from the same host files, so that old skeletons are not reused.
	stackVersion = "1"
)

// stackPlan is what a skeleton is made from.
type stackPlan struct {
	key   string
	links map[string]string // host dir → its symlink target, recreated as is
	binds []string          // host dirs bound at the same path
}

func planStack() (stackPlan, error) {
	p := stackPlan{links: map[string]string{}}
	h := sha256.New()
	fmt.Fprintf(h, "v%s\x00%s\x00%s\x00%s\x00", stackVersion, etcPasswd, etcGroup, etcNsswitch)
	for _, d := range stackDirs {
		fi, err := os.Lstat(d)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			continue
		case err != nil:
			return p, err
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(d)
			if err != nil {
				return p, err
			}
			p.links[d] = target
			fmt.Fprintf(h, "link %s %s\x00", d, target)
		case fi.IsDir():
			p.binds = append(p.binds, d)
			fmt.Fprintf(h, "dir %s\x00", d)
		}
	}
	if len(p.binds) == 0 || p.binds[0] != "/usr" {
		return p, errors.New("host /usr is not a directory")
	}
	for _, name := range hostEtc {
		if err := hashTree(h, filepath.Join("/etc", name), 1); err != nil {
			return p, err
		}
	}
	p.key = hex.EncodeToString(h.Sum(nil))[:16]
	return p, nil
}

// hashTree adds what copyPublic would copy from path to h. A directory's
// modification time changes with every entry added, removed or replaced
// (update-alternatives replaces a link by renaming over it).
func hashTree(h hash.Hash, path string, depth int) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintf(h, "none %s\x00", path)
		return nil
	} else if err != nil {
		return err
	}
	fmt.Fprintf(h, "%s %v %d %d\x00", path, fi.Mode(), fi.Size(), fi.ModTime().UnixNano())
	if !fi.IsDir() || depth == 0 {
		return nil
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return err
	}
	for _, e := range entries {
		// Symlinks and directories are covered by the directory's time;
		// regular files can change in place.
		if e.Type().IsRegular() {
			if err := hashTree(h, filepath.Join(path, e.Name()), depth-1); err != nil {
				return err
			}
		}
	}
	return nil
}

// stack returns the skeleton for the host as it is now, building it if
// needed, and the host dirs to bind over it.
func (r *Runc) stack() (dir string, binds []string, err error) {
	p, err := planStack()
	if err != nil {
		return "", nil, err
	}
	parent := filepath.Join(r.stateDir, ".stack")
	dir = filepath.Join(parent, p.key)
	if _, err := os.Stat(dir); err == nil {
		return dir, p.binds, nil
	}
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return "", nil, err
	}
	// Built aside and renamed into place, so that a job never sees half a
	// skeleton, and concurrent builders do not disturb each other.
	tmp, err := os.MkdirTemp(parent, ".tmp-")
	if err != nil {
		return "", nil, err
	}
	if err := buildStack(tmp, p); err != nil {
		os.RemoveAll(tmp)
		return "", nil, err
	}
	if err := os.Rename(tmp, dir); err != nil {
		os.RemoveAll(tmp)
		if _, serr := os.Stat(dir); serr != nil {
			return "", nil, err
		}
	}
	r.removeOldStacks(parent, p.key)
	return dir, p.binds, nil
}

// removeOldStacks removes skeletons of an earlier state of the host that
// no mounted overlay uses any more. Temporary ones are left to their
// builders unless they are a day old.
func (r *Runc) removeOldStacks(parent, current string) {
	entries, err := os.ReadDir(parent)
	if err != nil {
		return
	}
	var inUse []string
	_ = eachMount(func(_, fsType, superOpts string) {
		if fsType == "overlay" {
			inUse = append(inUse, superOpts)
		}
	})
	for _, e := range entries {
		name := e.Name()
		if name == current {
			continue
		}
		if strings.HasPrefix(name, ".tmp-") {
			if fi, err := e.Info(); err != nil || fi.ModTime().After(time.Now().Add(-24*time.Hour)) {
				continue
			}
		}
		dir := filepath.Join(parent, name)
		used := false
		for _, o := range inUse {
			used = used || strings.Contains(o, dir+":") || strings.Contains(o, dir+",") || strings.HasSuffix(o, dir)
		}
		if !used {
			r.log.Info("runtime: removing an outdated stack skeleton", "dir", dir)
			os.RemoveAll(dir)
		}
	}
}

// buildStack writes a skeleton into dir, which exists and is empty.
func buildStack(dir string, p stackPlan) error {
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	for _, d := range []string{"etc", "app", "tmp", "proc", "sys", "dev", "run", "var", "home", "mnt", "opt", "srv"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "root"), 0o700); err != nil {
		return err
	}
	// Programs that want a bigger scratch space than /tmp look here; the
	// root is read-only, so send them to /tmp.
	if err := os.Symlink("/tmp", filepath.Join(dir, "var/tmp")); err != nil {
		return err
	}
	for d, target := range p.links {
		if err := os.Symlink(target, filepath.Join(dir, d)); err != nil {
			return err
		}
	}
	for _, d := range p.binds {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	etc := filepath.Join(dir, "etc")
	if err := writeFiles(etc, map[string]string{
		"passwd": etcPasswd, "group": etcGroup, "nsswitch.conf": etcNsswitch,
	}); err != nil {
		return err
	}
	for _, name := range hostEtc {
		if err := copyPublic(filepath.Join("/etc", name), filepath.Join(etc, name), 1); err != nil {
			return err
		}
	}
	return nil
}

// copyPublic copies src to dst if it is world-readable: a symlink as a
// symlink, a regular file by content, a directory with up to depth levels
// of its entries. Anything missing or of another kind is skipped.
func copyPublic(src, dst string, depth int) error {
	fi, err := os.Lstat(src)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		target, err := os.Readlink(src)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		return os.Symlink(target, dst)
	case fi.Mode().Perm()&0o004 == 0:
		return nil
	case fi.Mode().IsRegular():
		if fi.Size() > 16<<20 {
			return nil
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		return copyFile(src, dst)
	case fi.IsDir() && depth > 0:
		entries, err := os.ReadDir(src)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(dst, 0o755); err != nil {
			return err
		}
		for _, e := range entries {
			if err := copyPublic(filepath.Join(src, e.Name()), filepath.Join(dst, e.Name()), depth-1); err != nil {
				return err
			}
		}
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
