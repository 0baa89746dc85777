package artifact

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// Cache holds extracted artifacts on a host, one directory per digest:
// <Dir>/<sha256>. A directory only ever appears there by an atomic rename of
// a complete, verified extraction, so its existence is the cache's whole
// index and survives agent restarts with no other state. Entries whose
// names start with '.' are work in progress or leftovers from a crash.
//
// The zero value with Dir set is ready to use. One Cache per directory per
// process: the in-flight bookkeeping that makes concurrent Fetches of one
// digest download once, and that tells GC which leftovers are stale, is in
// memory.
type Cache struct {
	Dir string
	// Client is used for http(s) URIs; nil means http.DefaultClient. The
	// request is bounded by Fetch's context.
	Client *http.Client
	// Authorize, if set, is called on every http(s) request before it is
	// sent, e.g. to add the cluster's blobstore credentials. A func rather
	// than a fixed header so credentials can rotate.
	Authorize func(*http.Request) error
	// MaxDownloadSize bounds the compressed archive. Default: the extract
	// limit on the uncompressed stream, since gzip never makes a tar larger
	// by more than a few bytes per 64 KiB.
	MaxDownloadSize int64
	// Limits bound extraction; the zero value means the defaults.
	Limits Limits

	mu       sync.Mutex
	inflight map[string]*flight
}

// flight is one download of a digest that concurrent Fetches share.
type flight struct {
	done chan struct{}
	err  error
}

// Fetch returns the directory holding the artifact with the given sha256,
// downloading and extracting it from uri first if the cache lacks it. uri
// is file:///abs/path or http(s)://...; the digest is 64 lowercase hex
// digits. The bytes are verified before extraction starts, and nothing is
// cached unless both succeed. Concurrent Fetches of one digest share one
// download; the URI of whichever came first is used, which is fine because
// the content is fixed by the digest.
//
// The returned directory must be treated as read-only: it is shared by
// every job using the artifact.
func (c *Cache) Fetch(ctx context.Context, uri, digest string) (string, error) {
	return c.FetchAs(ctx, uri, digest, nil)
}

// FetchAs is Fetch with the tree owned by owner instead of Limits.Owner
// (nil means Limits.Owner). Each owner gets a copy of its own, the entry
// EntryName(digest, owner): each app's jobs run as a uid of their own and
// a writable job (a build) must own the files it changes, while no other
// app's uid may own, and so change, an app's files.
func (c *Cache) FetchAs(ctx context.Context, uri, digest string, owner *Owner) (string, error) {
	if !ValidDigest(digest) {
		return "", fmt.Errorf("%w: %q", ErrBadDigest, digest)
	}
	if c.Dir == "" {
		return "", errors.New("artifact: Cache.Dir is not set")
	}
	if owner == nil {
		owner = c.Limits.Owner
	}
	if owner != nil && (owner.UID < 0 || owner.GID < 0) {
		return "", fmt.Errorf("artifact: bad owner %d:%d", owner.UID, owner.GID)
	}
	name := c.EntryName(digest, owner)
	dir := filepath.Join(c.Dir, name)
	for {
		if ok, err := isDir(dir); err != nil {
			return "", err
		} else if ok {
			return dir, nil
		}
		f, leader, hit, err := c.join(name, dir)
		if err != nil {
			return "", err
		} else if hit {
			return dir, nil
		}
		if leader {
			f.err = c.download(ctx, uri, digest, dir, owner)
			c.mu.Lock()
			delete(c.inflight, name)
			c.mu.Unlock()
			close(f.done)
			if f.err != nil {
				return "", f.err
			}
			return dir, nil
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-f.done:
		}
		if f.err == nil {
			return dir, nil
		}
		// The leader's context ended, not ours: try again (probably as
		// the new leader) instead of inheriting its cancellation.
		if errors.Is(f.err, context.Canceled) || errors.Is(f.err, context.DeadlineExceeded) {
			if ctx.Err() == nil {
				continue
			}
		}
		return "", f.err
	}
}

// join finds the flight for digest or starts one. The cache is checked
// again under the lock because the leader renames before it leaves the
// map: a Fetch that missed the directory and then finds no flight would
// otherwise download a second time.
func (c *Cache) join(name, dir string) (f *flight, leader, hit bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f := c.inflight[name]; f != nil {
		return f, false, false, nil
	}
	if ok, err := isDir(dir); err != nil || ok {
		return nil, false, ok, err
	}
	if c.inflight == nil {
		c.inflight = map[string]*flight{}
	}
	f = &flight{done: make(chan struct{})}
	c.inflight[name] = f
	return f, true, false, nil
}

// Remove deletes a cached artifact, named by its digest or by an
// EntryName; removing one that is not cached is not an error. The
// directory is first renamed aside, so a concurrent Fetch sees either the
// whole tree or none of it. Callers must make sure no job still uses it
// (see GC).
func (c *Cache) Remove(digest string) error {
	if _, ok := ParseEntryName(digest); !ok {
		return fmt.Errorf("%w: %q", ErrBadDigest, digest)
	}
	if c.Dir == "" {
		return errors.New("artifact: Cache.Dir is not set")
	}
	trash := filepath.Join(c.Dir, ".trash-"+digest[:12]+"-"+rand.Text())
	if err := os.Rename(filepath.Join(c.Dir, digest), trash); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("artifact: %w", err)
	}
	if err := os.RemoveAll(trash); err != nil {
		return fmt.Errorf("artifact: %w", err)
	}
	return nil
}

// GC removes every cached artifact for which keep returns false (keep is
// called with the entry's name, EntryName(digest, owner), which is the
// digest for the default owner, and without locks held, so it may consult
// the agent's job state), and
// the leftovers of interrupted downloads and extractions when no Fetch is in
// progress. It returns the names it removed.
func (c *Cache) GC(keep func(digest string) bool) ([]string, error) {
	entries, err := os.ReadDir(c.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("artifact: %w", err)
	}
	var removed []string
	var errs []error
	for _, e := range entries {
		if _, ok := ParseEntryName(e.Name()); !ok || keep(e.Name()) {
			continue
		}
		if err := c.Remove(e.Name()); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, e.Name())
	}
	errs = append(errs, c.removeLeftovers())
	return removed, errors.Join(errs...)
}

// removeLeftovers deletes the dot-entries of Dir, but only while no Fetch
// is in flight, and holding the lock so none starts meanwhile: a temp file
// or directory that belongs to a live Fetch looks just like a crash's.
func (c *Cache) removeLeftovers() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.inflight) > 0 {
		return nil
	}
	entries, err := os.ReadDir(c.Dir)
	if err != nil {
		return fmt.Errorf("artifact: %w", err)
	}
	var errs []error
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			if err := os.RemoveAll(filepath.Join(c.Dir, e.Name())); err != nil {
				errs = append(errs, fmt.Errorf("artifact: %w", err))
			}
		}
	}
	return errors.Join(errs...)
}

// Usage returns the bytes the cache occupies on disk, counting blocks
// shared by hard links once, for the agent to compare with its budget.
func (c *Cache) Usage() (int64, error) {
	var total int64
	seen := map[[2]uint64]bool{}
	err := filepath.WalkDir(c.Dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			// A concurrent Remove or GC deletes trees under our feet.
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		fi, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		n, key, linked := diskUsage(fi)
		if linked {
			if seen[key] {
				return nil
			}
			seen[key] = true
		}
		total += n
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("artifact: %w", err)
	}
	return total, nil
}

func isDir(p string) (bool, error) {
	fi, err := os.Lstat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("artifact: %w", err)
	case !fi.IsDir():
		return false, fmt.Errorf("artifact: %s is in the cache but not a directory", p)
	}
	return true, nil
}

// EntryName is the name, in Dir, of digest's tree owned by owner (nil:
// Limits.Owner): the digest itself for Limits.Owner, so that the trees
// of caches without per-owner copies keep their names, and
// "<digest>-<uid>-<gid>" for any other owner.
func (c *Cache) EntryName(digest string, owner *Owner) string {
	def := c.Limits.Owner
	if owner == nil || def != nil && *owner == *def {
		return digest
	}
	return digest + "-" + strconv.Itoa(owner.UID) + "-" + strconv.Itoa(owner.GID)
}

// ParseEntryName returns the digest of a cache entry's name, and whether
// it is one.
func ParseEntryName(name string) (digest string, ok bool) {
	if len(name) < 64 || !ValidDigest(name[:64]) {
		return "", false
	}
	digest, rest := name[:64], name[64:]
	if rest == "" {
		return digest, true
	}
	uid, gid, ok := strings.Cut(strings.TrimPrefix(rest, "-"), "-")
	if !ok || !strings.HasPrefix(rest, "-") || !isNumber(uid) || !isNumber(gid) {
		return "", false
	}
	return digest, true
}

func isNumber(s string) bool {
	if s == "" || len(s) > 10 || len(s) > 1 && s[0] == '0' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
