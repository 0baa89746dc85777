package tarball

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"time"

	"github.com/pierpaas/pier/host/artifact"
)

// ErrTooLarge means the tree is over a limit host/artifact.Extract applies
// by default, so the cluster would refuse the upload; it is better said
// before the upload than after.
var ErrTooLarge = errors.New("tarball: over the cluster's artifact limits")

// Options tune Pack. The zero value is fine.
type Options struct {
	// Warn receives one line per entry that was skipped and why. nil
	// discards them, so the CLI should always set it.
	Warn func(msg string)
	// Progress receives the number of compressed bytes written to the
	// output so far, after every write.
	Progress func(written int64)
}

// Stats describe a packed tree.
type Stats struct {
	Files, Dirs, Symlinks int
	Skipped               int   // entries left out with a warning
	Size                  int64 // bytes of regular file content
	Written               int64 // bytes written to the output (compressed)
}

// limits are those of artifact.Extract's zero Limits; tests lower them.
type limits struct {
	entries int
	total   int64
	pathLen int
}

var defaultLimits = limits{artifact.DefaultMaxEntries, artifact.DefaultMaxTotalSize, artifact.DefaultMaxPathLen}

// Pack writes dir as a gzipped tar to w. Names are relative to dir
// ("web/app.js", directories with a trailing '/'), and dir itself is not
// an entry: the host extracts the archive and mounts it at /app. Every
// directory or file named .git is left out, and nothing else: no ignore
// files are read. Hard links are stored as separate files. Regular files
// are read through an os.Root, so a file replaced by a symlink while Pack
// runs cannot make it read outside dir, and the replacement is an error.
//
// The output must not be written inside dir, or the archive would contain
// itself in part. w is not closed.
func Pack(ctx context.Context, dir string, w io.Writer, opts Options) (Stats, error) {
	return pack(ctx, dir, w, opts, defaultLimits)
}

func pack(ctx context.Context, dir string, w io.Writer, opts Options, lim limits) (Stats, error) {
	// Stat, not Lstat: a source directory reached through a symlink
	// (~/code -> /mnt/code) is still the tree the user means.
	if fi, err := os.Stat(dir); err != nil {
		return Stats{}, fmt.Errorf("tarball: %w", err)
	} else if !fi.IsDir() {
		return Stats{}, fmt.Errorf("tarball: %s is not a directory", dir)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return Stats{}, fmt.Errorf("tarball: %w", err)
	}
	defer root.Close()

	cw := &countingWriter{w: w, progress: opts.Progress}
	zw := gzip.NewWriter(cw) // zero header: no name, no mtime, so deterministic
	p := &packer{ctx: ctx, root: root, tw: tar.NewWriter(zw), warn: opts.Warn, lim: lim}
	err = fs.WalkDir(root.FS(), ".", p.visit)
	if err == nil {
		err = p.tw.Close()
	}
	if err == nil {
		err = zw.Close()
	}
	p.st.Written = cw.n
	if err != nil {
		return p.st, wrap(err)
	}
	return p.st, nil
}

// wrap prefixes the package name once, for errors from the walk, the
// file system and the writers, which do not say where they come from.
func wrap(err error) error {
	if errors.Is(err, ErrTooLarge) {
		return err
	}
	return fmt.Errorf("tarball: %w", err)
}

type packer struct {
	ctx     context.Context
	root    *os.Root
	tw      *tar.Writer
	warn    func(string)
	lim     limits
	entries int
	st      Stats
}

// visit is called in lexical order within each directory, which is what
// makes the archive deterministic.
func (p *packer) visit(name string, d fs.DirEntry, err error) error {
	if err != nil {
		return err
	}
	if err := p.ctx.Err(); err != nil {
		return err
	}
	if d.Name() == ".git" {
		if d.IsDir() {
			return fs.SkipDir
		}
		return nil // a submodule's .git file points at the parent's .git
	}
	if name == "." {
		return nil
	}
	info, err := d.Info() // lstat: links are not followed
	if err != nil {
		return err
	}
	mode := info.Mode()
	hdr := &tar.Header{
		Name:    name,
		Mode:    int64(mode.Perm()),
		ModTime: info.ModTime().Truncate(time.Second),
	}
	switch {
	case mode.IsDir():
		hdr.Typeflag, hdr.Name = tar.TypeDir, name+"/"
		if err := p.header(hdr); err != nil {
			return err
		}
		p.st.Dirs++
	case mode.IsRegular():
		return p.file(hdr, info)
	case mode&fs.ModeSymlink != 0:
		target, err := p.root.Readlink(name)
		if err != nil {
			return err
		}
		if why := symlinkProblem(name, target); why != "" {
			p.skip(name, fmt.Sprintf("symlink to %s: %s", target, why))
			return nil
		}
		hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, target
		if err := p.header(hdr); err != nil {
			return err
		}
		p.st.Symlinks++
	default:
		p.skip(name, kind(mode)+" (only files, directories and symlinks are packed)")
	}
	return nil
}

func (p *packer) file(hdr *tar.Header, info fs.FileInfo) error {
	hdr.Typeflag, hdr.Size = tar.TypeReg, info.Size()
	if p.st.Size+hdr.Size > p.lim.total {
		return fmt.Errorf("%w: files total more than %s", ErrTooLarge, HumanSize(p.lim.total))
	}
	f, err := p.root.Open(hdr.Name)
	if err != nil {
		return err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil {
		return err
	} else if !os.SameFile(fi, info) {
		return fmt.Errorf("%s changed while it was being packed", hdr.Name)
	}
	if err := p.header(hdr); err != nil {
		return err
	}
	// CopyN: a file that grew is cut at the size in its header (the tar
	// writer would refuse more), one that shrank is an error.
	n, err := io.CopyN(p.tw, ctxReader{p.ctx, f}, hdr.Size)
	if err == io.EOF {
		return fmt.Errorf("%s shrank from %d to %d bytes while it was being packed", hdr.Name, hdr.Size, n)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", hdr.Name, err)
	}
	p.st.Files++
	p.st.Size += hdr.Size
	return nil
}

func (p *packer) header(hdr *tar.Header) error {
	if p.entries++; p.entries > p.lim.entries {
		return fmt.Errorf("%w: more than %d files and directories", ErrTooLarge, p.lim.entries)
	}
	if len(hdr.Name) > p.lim.pathLen || len(hdr.Linkname) > p.lim.pathLen {
		return fmt.Errorf("%w: %s: name or link target longer than %d bytes", ErrTooLarge, hdr.Name, p.lim.pathLen)
	}
	return p.tw.WriteHeader(hdr)
}

func (p *packer) skip(name, why string) {
	p.st.Skipped++
	if p.warn != nil {
		p.warn(fmt.Sprintf("skipped %s: %s", name, why))
	}
}

func kind(m fs.FileMode) string {
	switch {
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeNamedPipe != 0:
		return "named pipe"
	case m&fs.ModeCharDevice != 0:
		return "character device"
	case m&fs.ModeDevice != 0:
		return "device"
	}
	return "special file"
}

// symlinkProblem says why artifact.Extract would refuse a symlink at link
// (a slash-separated name relative to the tree) pointing at target, or
// returns "". It repeats Extract's rule (its checkSymlinkTarget) because
// one refused entry makes the host reject the whole artifact: targets
// must be relative, may use ".." only as a leading run, and may not climb
// above the tree. Absolute targets are refused even when they point into
// the tree, since the tree is mounted at /app and they would not.
func symlinkProblem(link, target string) string {
	switch {
	case target == "":
		return "empty target"
	case strings.IndexByte(target, 0) >= 0:
		return "NUL byte in target"
	case path.IsAbs(target):
		return "absolute target (make it relative)"
	}
	depth := strings.Count(link, "/") // directories above link, inside the tree
	ups, descended := 0, false
	for _, c := range strings.Split(target, "/") {
		switch c {
		case "", ".":
		case "..":
			if descended {
				return "'..' after a name in the target (write it without)"
			}
			ups++
		default:
			descended = true
		}
	}
	if ups > depth {
		return "points outside the directory"
	}
	return ""
}

// countingWriter counts what reaches the output and reports it.
type countingWriter struct {
	w        io.Writer
	n        int64
	progress func(int64)
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	if c.progress != nil && n > 0 {
		c.progress(c.n)
	}
	return n, err
}

// ctxReader stops a long file copy when ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(b []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(b)
}
