package artifact

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Limits bound what one archive may cost the host. A zero field takes its
// default, so Limits{} is the production setting.
type Limits struct {
	// MaxTotalSize bounds the sum of regular file sizes. Default 2 GiB.
	MaxTotalSize int64
	// MaxFileSize bounds one regular file. Default MaxTotalSize.
	MaxFileSize int64
	// MaxEntries bounds tar headers of every kind. Default 100,000.
	MaxEntries int
	// MaxPathLen bounds an entry's name and link target, in bytes.
	// Default 4096 (PATH_MAX).
	MaxPathLen int
	// MaxArchiveSize bounds the uncompressed tar stream, headers and
	// padding included. The other limits are checked per header, but the
	// tar reader consumes PAX and GNU long-name headers (up to 1 MiB each)
	// without returning them, so only a byte count stops a gzip bomb made
	// of headers. Default MaxTotalSize + 8 KiB per entry + 1 MiB.
	MaxArchiveSize int64
	// Owner, when set, owns every extracted entry instead of the caller
	// (which must be root to give them away): the unprivileged user jobs
	// run as, so a job allowed to write to its copy of the tree can change
	// the files it came with, as a build must.
	Owner *Owner
}

// Owner is a numeric user and group.
type Owner struct{ UID, GID int }

// Default limits, chosen so that any slug a buildpack produces fits.
const (
	DefaultMaxTotalSize = 2 << 30
	DefaultMaxEntries   = 100_000
	DefaultMaxPathLen   = 4096
)

func (l Limits) withDefaults() Limits {
	if l.MaxTotalSize <= 0 {
		l.MaxTotalSize = DefaultMaxTotalSize
	}
	if l.MaxFileSize <= 0 {
		l.MaxFileSize = l.MaxTotalSize
	}
	if l.MaxEntries <= 0 {
		l.MaxEntries = DefaultMaxEntries
	}
	if l.MaxPathLen <= 0 {
		l.MaxPathLen = DefaultMaxPathLen
	}
	if l.MaxArchiveSize <= 0 {
		l.MaxArchiveSize = l.MaxTotalSize + int64(l.MaxEntries)*8<<10 + 1<<20
	}
	return l
}

// Extract unpacks the tar archive read from r, gzipped or not (sniffed from
// the gzip magic), into dest, which must not exist yet; its parent must.
//
// The archive is unpacked into a private temp directory next to dest and
// renamed into place only when every entry passed, after the file system
// has been synced, so dest either holds the whole archive, durably, or does
// not exist: a rejected or truncated archive leaves nothing behind, and a
// crash never leaves a half-written tree that a cache would take for good.
//
// Rules (each refusal is an *EntryError wrapping ErrUnsafe or ErrLimit):
//   - Names are cleaned; absolute names and names climbing out with ".."
//     are refused.
//   - No entry may be created beneath a symlink, even one pointing inside:
//     tar never archives such a path, and refusing it is what keeps the
//     symlink rules below sound.
//   - Symlink targets must be relative, may use ".." only as a leading run,
//     and may not climb above dest (see checkSymlinkTarget).
//   - Hard links must name a regular file already extracted, by a clean
//     relative path.
//   - Device nodes, FIFOs and unknown types are refused; pax global headers
//     are ignored.
//   - A name may appear twice only as a directory both times.
//   - Files are owned by the caller, not the archive's uid/gid; permission
//     bits are kept, setuid, setgid and sticky are dropped (a slug has no
//     business raising privileges, and dropping them is what `tar
//     --no-same-permissions` users expect). Modification times are kept,
//     since e.g. Python compares them with its bytecode caches.
func Extract(r io.Reader, dest string, lim Limits) (err error) {
	lim = lim.withDefaults()
	dest = filepath.Clean(dest)
	if _, err := os.Lstat(dest); err == nil {
		return fmt.Errorf("artifact: extract into %s: %w", dest, fs.ErrExist)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("artifact: %w", err)
	}
	parent := filepath.Dir(dest)
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dest)+".extract-")
	if err != nil {
		return fmt.Errorf("artifact: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	if err := extractInto(r, tmp, lim); err != nil {
		return err
	}
	if o := lim.Owner; o != nil {
		// Everything under tmp was made by us from the archive: no link
		// is followed (Lchown), and nothing else writes there.
		err := filepath.WalkDir(tmp, func(path string, _ fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(path, o.UID, o.GID)
		})
		if err != nil {
			return fmt.Errorf("artifact: give the tree to %d:%d: %w", o.UID, o.GID, err)
		}
	}
	// MkdirTemp made it 0700; the tree is mounted into containers that may
	// run as another user.
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fmt.Errorf("artifact: %w", err)
	}
	if err := syncFS(tmp); err != nil {
		return fmt.Errorf("artifact: sync %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, dest); err != nil {
		return fmt.Errorf("artifact: %w", err)
	}
	// Best effort: the contents are durable already, and a lost rename only
	// leaves a temp directory that Cache.GC removes.
	syncDir(parent)
	return nil
}

// extractor holds the state of one extraction into a fresh private
// directory. Because nothing else writes there, dirs is authoritative: a
// path is a real directory exactly when it is in dirs.
type extractor struct {
	root    *os.Root
	lim     Limits
	entries int
	total   int64
	dirs    map[string]bool    // real directories, created by us
	meta    map[string]dirMeta // directory modes and times, applied last
}

type dirMeta struct {
	perm  fs.FileMode
	mtime time.Time
}

func extractInto(r io.Reader, dir string, lim Limits) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("artifact: %w", err)
	}
	defer root.Close()

	br := bufio.NewReader(r)
	magic, err := br.Peek(2)
	if len(magic) == 0 {
		if err == io.EOF {
			return errors.New("artifact: empty archive")
		}
		return fmt.Errorf("artifact: read archive: %w", err)
	}
	var zr *gzip.Reader
	var stream io.Reader = br
	if len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		if zr, err = gzip.NewReader(br); err != nil {
			return fmt.Errorf("artifact: read archive: %w", err)
		}
		stream = zr
	}
	stream = &cappedReader{r: stream, left: lim.MaxArchiveSize, max: lim.MaxArchiveSize}

	x := &extractor{root: root, lim: lim, dirs: map[string]bool{}, meta: map[string]dirMeta{}}
	tr := tar.NewReader(stream)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		// With GODEBUG=tarinsecurepath=0 the reader flags bad names itself
		// but still returns the header; let our own check name the reason.
		if err != nil && !(errors.Is(err, tar.ErrInsecurePath) && hdr != nil) {
			return readError(err)
		}
		if err := x.entry(hdr, tr); err != nil {
			return err
		}
	}
	if zr != nil {
		// Read to the end of the gzip stream so its CRC is checked: a
		// corrupt tail would otherwise go unnoticed after the tar trailer.
		if _, err := io.Copy(io.Discard, stream); err != nil {
			return readError(err)
		}
	}
	return x.finish()
}

func (x *extractor) entry(hdr *tar.Header, data io.Reader) error {
	x.entries++
	if x.entries > x.lim.MaxEntries {
		return overLimit(hdr.Name, "more than %d entries", x.lim.MaxEntries)
	}
	if hdr.Typeflag == tar.TypeXGlobalHeader {
		return nil // metadata only; `git archive` writes one
	}
	if len(hdr.Name) > x.lim.MaxPathLen || len(hdr.Linkname) > x.lim.MaxPathLen {
		return overLimit(hdr.Name, "name or link target longer than %d bytes", x.lim.MaxPathLen)
	}
	name, why := cleanName(hdr.Name)
	if why != "" {
		return unsafeEntry(hdr.Name, why)
	}
	if name == "." && hdr.Typeflag != tar.TypeDir {
		return unsafeEntry(hdr.Name, "replaces the destination itself")
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		return x.dir(hdr, name)
	case tar.TypeReg:
		return x.file(hdr, name, data)
	case tar.TypeSymlink:
		return x.symlink(hdr, name)
	case tar.TypeLink:
		return x.hardlink(hdr, name)
	case tar.TypeChar, tar.TypeBlock:
		return unsafeEntry(hdr.Name, "device node")
	case tar.TypeFifo:
		return unsafeEntry(hdr.Name, "FIFO")
	default:
		return unsafeEntry(hdr.Name, fmt.Sprintf("unsupported entry type %q", hdr.Typeflag))
	}
}

func (x *extractor) dir(hdr *tar.Header, name string) error {
	if name == "." {
		return nil // the destination's own mode is ours to choose
	}
	if err := x.parents(hdr.Name, name); err != nil {
		return err
	}
	if !x.dirs[name] {
		if err := x.absent(hdr.Name, name); err != nil {
			return err
		}
		if err := x.root.Mkdir(filepath.FromSlash(name), 0o700); err != nil {
			return fsError(hdr.Name, err)
		}
		x.dirs[name] = true
	}
	x.meta[name] = dirMeta{perm: perm(hdr), mtime: hdr.ModTime}
	return nil
}

func (x *extractor) file(hdr *tar.Header, name string, data io.Reader) error {
	if hdr.Size > x.lim.MaxFileSize {
		return overLimit(hdr.Name, "file of %d bytes, limit %d", hdr.Size, x.lim.MaxFileSize)
	}
	if x.total += hdr.Size; x.total > x.lim.MaxTotalSize {
		return overLimit(hdr.Name, "total size over %d bytes", x.lim.MaxTotalSize)
	}
	if err := x.parents(hdr.Name, name); err != nil {
		return err
	}
	if err := x.absent(hdr.Name, name); err != nil {
		return err
	}
	fname := filepath.FromSlash(name)
	// O_EXCL: never open, and so never follow, anything already there.
	f, err := x.root.OpenFile(fname, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fsError(hdr.Name, err)
	}
	_, err = io.Copy(f, data)
	if err == nil {
		// Chmod on the descriptor: exact bits regardless of umask, and no
		// path lookup that could be raced.
		err = f.Chmod(perm(hdr))
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = x.root.Chtimes(fname, hdr.AccessTime, hdr.ModTime)
	}
	if err != nil {
		return fsError(hdr.Name, err)
	}
	return nil
}

func (x *extractor) symlink(hdr *tar.Header, name string) error {
	if why := checkSymlinkTarget(name, hdr.Linkname); why != "" {
		return unsafeEntry(hdr.Name, why)
	}
	if err := x.parents(hdr.Name, name); err != nil {
		return err
	}
	if err := x.absent(hdr.Name, name); err != nil {
		return err
	}
	if err := x.root.Symlink(hdr.Linkname, filepath.FromSlash(name)); err != nil {
		return fsError(hdr.Name, err)
	}
	return nil
}

func (x *extractor) hardlink(hdr *tar.Header, name string) error {
	target, why := cleanName(hdr.Linkname)
	if why != "" {
		return unsafeEntry(hdr.Name, "hard link target: "+why)
	}
	// Only a regular file may be linked: a second name for a symlink would
	// carry a target checked against the first name's directory, and a
	// directory cannot be hard-linked at all.
	for d := path.Dir(target); d != "."; d = path.Dir(d) {
		if !x.dirs[d] {
			return unsafeEntry(hdr.Name, "hard link target is not below real directories")
		}
	}
	fi, err := x.root.Lstat(filepath.FromSlash(target))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return unsafeEntry(hdr.Name, "hard link target not yet extracted")
	case err != nil:
		return fsError(hdr.Name, err)
	case !fi.Mode().IsRegular():
		return unsafeEntry(hdr.Name, "hard link to something other than a regular file")
	}
	if err := x.parents(hdr.Name, name); err != nil {
		return err
	}
	if err := x.absent(hdr.Name, name); err != nil {
		return err
	}
	if err := x.root.Link(filepath.FromSlash(target), filepath.FromSlash(name)); err != nil {
		return fsError(hdr.Name, err)
	}
	return nil
}

// parents makes every ancestor of name a real directory, creating missing
// ones. An ancestor that exists but is not in dirs is a symlink or a file,
// and writing beneath it is refused: this is the check that stops "a ->
// /etc" followed by "a/passwd", and os.Root would stop it again.
func (x *extractor) parents(entry, name string) error {
	dir := path.Dir(name)
	if dir == "." || x.dirs[dir] {
		return nil
	}
	if err := x.parents(entry, dir); err != nil {
		return err
	}
	fi, err := x.root.Lstat(filepath.FromSlash(dir))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := x.root.Mkdir(filepath.FromSlash(dir), 0o700); err != nil {
			return fsError(entry, err)
		}
		// Directories the archive only implies get the usual mode.
		x.meta[dir] = dirMeta{perm: 0o755}
	case err != nil:
		return fsError(entry, err)
	case fi.Mode()&fs.ModeSymlink != 0:
		return unsafeEntry(entry, "path goes through symlink "+dir)
	default:
		return unsafeEntry(entry, "path goes through non-directory "+dir)
	}
	x.dirs[dir] = true
	return nil
}

// absent refuses a name that already exists. Allowing a later entry to
// replace an earlier one would mean following or removing what is there;
// slugs never need it, and refusing keeps every link's location fixed.
func (x *extractor) absent(entry, name string) error {
	_, err := x.root.Lstat(filepath.FromSlash(name))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fsError(entry, err)
	default:
		return unsafeEntry(entry, "duplicate entry")
	}
}

// finish applies directory modes and times once nothing more is written
// into them, deepest first, so that a parent without search or write
// permission cannot block its children (which matters when not root).
func (x *extractor) finish() error {
	names := make([]string, 0, len(x.meta))
	for n := range x.meta {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool {
		di, dj := strings.Count(names[i], "/"), strings.Count(names[j], "/")
		if di != dj {
			return di > dj
		}
		return names[i] < names[j]
	})
	for _, n := range names {
		m, fn := x.meta[n], filepath.FromSlash(n)
		if err := x.root.Chmod(fn, m.perm); err != nil {
			return fsError(n, err)
		}
		if err := x.root.Chtimes(fn, time.Time{}, m.mtime); err != nil {
			return fsError(n, err)
		}
	}
	return nil
}

// perm keeps the rwx bits only: tar stores setuid, setgid and sticky as
// 04000, 02000 and 01000, all outside 0777.
func perm(hdr *tar.Header) fs.FileMode { return fs.FileMode(hdr.Mode & 0o777) }

func readError(err error) error {
	if errors.Is(err, ErrLimit) {
		return err // already says what and which limit
	}
	return fmt.Errorf("artifact: read archive: %w", err)
}

func fsError(entry string, err error) error {
	return fmt.Errorf("artifact: entry %q: %w", entry, err)
}

// cappedReader fails once more than max bytes have been read.
type cappedReader struct {
	r         io.Reader
	left, max int64
}

func (c *cappedReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		// A stream of exactly max bytes is fine; only a further byte is not.
		var probe [1]byte
		if n, err := c.r.Read(probe[:]); n == 0 {
			return 0, err
		}
		return 0, fmt.Errorf("%w: uncompressed archive stream over %d bytes", ErrLimit, c.max)
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}
