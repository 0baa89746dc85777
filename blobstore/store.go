package blobstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"
)

// Errors returned by the store. Callers match them with errors.Is.
var (
	ErrBadDigest      = errors.New("blobstore: digest must be 64 lowercase hex characters")
	ErrDigestMismatch = errors.New("blobstore: content does not match the expected digest")
	ErrTooLarge       = errors.New("blobstore: blob exceeds the size limit")
	ErrNotFound       = errors.New("blobstore: blob not found")
)

// DefaultMaxSize caps a blob when no WithMaxSize option is given: large
// enough for any reasonable slug, small enough that one runaway upload cannot
// fill a server's disk.
const DefaultMaxSize int64 = 2 << 30

// DefaultGCGrace is how long a freshly written blob is safe from GC. An
// upload and the release that references it are two separate requests, so
// without a grace period a GC running between them would delete the artifact
// of a release that is about to be created.
const DefaultGCGrace = time.Hour

// staleTempAge is how old a temp file must be before GC treats it as the
// leftover of a crashed or abandoned upload rather than one in progress.
const staleTempAge = time.Hour

// Blob describes a stored blob.
type Blob struct {
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// Store is a content-addressed blob store in a local directory. Blobs live at
// <dir>/sha256/<first two hex digits>/<digest>; uploads in progress live in
// <dir>/tmp, on the same filesystem so that committing a blob is one atomic
// link or rename. It is safe for concurrent use, also by several processes.
type Store struct {
	dir     string
	maxSize int64
	grace   time.Duration
	now     func() time.Time

	// mu orders committing a blob against deleting it, so that a Put that
	// finds its blob already present cannot have it removed by a concurrent
	// GC or Delete between the check and its return.
	mu sync.Mutex
}

// Option configures a Store.
type Option func(*Store)

// WithMaxSize caps the size of a blob in bytes; n <= 0 means no limit.
func WithMaxSize(n int64) Option { return func(s *Store) { s.maxSize = n } }

// WithGCGrace sets how long a newly written (or re-uploaded) blob is spared
// by GC even if keep says otherwise.
func WithGCGrace(d time.Duration) Option { return func(s *Store) { s.grace = d } }

// WithClock injects the clock used for GC ages, for tests.
func WithClock(now func() time.Time) Option { return func(s *Store) { s.now = now } }

// New opens (creating if needed) a store rooted at dir.
func New(dir string, opts ...Option) (*Store, error) {
	s := &Store{dir: dir, maxSize: DefaultMaxSize, grace: DefaultGCGrace, now: time.Now}
	for _, o := range opts {
		o(s)
	}
	for _, d := range []string{s.blobRoot(), s.tmpDir()} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return nil, fmt.Errorf("blobstore: %w", err)
		}
	}
	return s, nil
}

// MaxSize returns the blob size cap in bytes (<= 0: unlimited).
func (s *Store) MaxSize() int64 { return s.maxSize }

func (s *Store) blobRoot() string { return filepath.Join(s.dir, "sha256") }
func (s *Store) tmpDir() string   { return filepath.Join(s.dir, "tmp") }

func (s *Store) path(digest string) string {
	return filepath.Join(s.blobRoot(), digest[:2], digest)
}

// ValidDigest reports whether d is a well-formed SHA-256 hex digest. Only
// lowercase is accepted so that one blob has exactly one name, and because a
// valid digest contains no separators it can be used as a path element.
func ValidDigest(d string) bool {
	if len(d) != 64 {
		return false
	}
	for i := 0; i < len(d); i++ {
		c := d[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// Put stores the content of r. If wantSHA256 is not empty the content must
// hash to it, or nothing is stored and ErrDigestMismatch is returned. Putting
// a blob that is already stored succeeds and leaves the stored copy alone.
func (s *Store) Put(ctx context.Context, r io.Reader, wantSHA256 string) (Blob, error) {
	b, _, err := s.put(ctx, r, wantSHA256)
	return b, err
}

// put is Put that also says whether the blob was newly created, which the
// HTTP handler needs to choose between 201 and 200.
func (s *Store) put(ctx context.Context, r io.Reader, want string) (Blob, bool, error) {
	if want != "" && !ValidDigest(want) {
		return Blob{}, false, ErrBadDigest
	}
	tmp, err := os.CreateTemp(s.tmpDir(), "put-*")
	if err != nil {
		return Blob{}, false, fmt.Errorf("blobstore: %w", err)
	}
	// Every path that does not commit the blob must remove the temp file,
	// and after a successful link it is a redundant second name.
	defer os.Remove(tmp.Name())
	committed := false
	defer func() {
		if !committed {
			tmp.Close()
		}
	}()

	h := sha256.New()
	src := io.Reader(ctxReader{ctx, r})
	if s.maxSize > 0 {
		// One byte over the cap is enough to know the blob is too large
		// without reading (and storing) the rest of an arbitrarily long body.
		src = io.LimitReader(src, s.maxSize+1)
	}
	n, err := io.Copy(io.MultiWriter(tmp, h), src)
	if err != nil {
		return Blob{}, false, fmt.Errorf("blobstore: writing blob: %w", err)
	}
	if s.maxSize > 0 && n > s.maxSize {
		return Blob{}, false, ErrTooLarge
	}
	digest := hex.EncodeToString(h.Sum(nil))
	if want != "" && digest != want {
		return Blob{}, false, fmt.Errorf("%w: got %s, want %s", ErrDigestMismatch, digest, want)
	}
	// Sync before the blob becomes visible under its name: after a crash a
	// digest must never name a truncated file.
	if err := tmp.Sync(); err != nil {
		return Blob{}, false, fmt.Errorf("blobstore: %w", err)
	}
	// Blobs are immutable; read-only files make accidental edits fail loudly.
	if err := tmp.Chmod(0o440); err != nil {
		return Blob{}, false, fmt.Errorf("blobstore: %w", err)
	}
	committed = true
	if err := tmp.Close(); err != nil {
		return Blob{}, false, fmt.Errorf("blobstore: %w", err)
	}
	created, err := s.commit(tmp.Name(), digest)
	if err != nil {
		return Blob{}, false, err
	}
	return Blob{SHA256: digest, Size: n}, created, nil
}

// commit gives the temp file its final name. A hard link, unlike rename,
// fails if the name exists, which tells us whether this Put created the blob
// and never replaces a file that a reader may have open.
func (s *Store) commit(tmpName, digest string) (bool, error) {
	final := s.path(digest)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := os.MkdirAll(filepath.Dir(final), 0o750); err != nil {
		return false, fmt.Errorf("blobstore: %w", err)
	}
	err := os.Link(tmpName, final)
	switch {
	case err == nil:
	case errors.Is(err, fs.ErrExist):
		// Already stored: refresh its age so that the GC grace period
		// covers this upload too, as its release may not exist yet.
		now := s.now()
		if err := os.Chtimes(final, now, now); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return false, fmt.Errorf("blobstore: %w", err)
		}
		return false, nil
	default:
		// Some filesystems have no hard links; rename is still atomic, and
		// replacing an existing blob with identical bytes is harmless.
		if rerr := os.Rename(tmpName, final); rerr != nil {
			return false, fmt.Errorf("blobstore: %w", rerr)
		}
	}
	syncDir(filepath.Dir(final))
	return true, nil
}

// syncDir makes a new directory entry durable. It is best effort: not every
// platform can fsync a directory, and the blob's data is already synced.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// Open opens a blob for reading. The caller closes the file. A blob deleted
// while open stays readable through the open file.
func (s *Store) Open(digest string) (*os.File, Blob, error) {
	if !ValidDigest(digest) {
		return nil, Blob{}, ErrBadDigest
	}
	f, err := os.Open(s.path(digest))
	if err != nil {
		return nil, Blob{}, notFound(err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, Blob{}, fmt.Errorf("blobstore: %w", err)
	}
	return f, Blob{SHA256: digest, Size: fi.Size()}, nil
}

// Stat describes a stored blob.
func (s *Store) Stat(digest string) (Blob, error) {
	if !ValidDigest(digest) {
		return Blob{}, ErrBadDigest
	}
	fi, err := os.Stat(s.path(digest))
	if err != nil {
		return Blob{}, notFound(err)
	}
	return Blob{SHA256: digest, Size: fi.Size()}, nil
}

// Delete removes a blob; ErrNotFound if it is not stored.
func (s *Store) Delete(digest string) error {
	if !ValidDigest(digest) {
		return ErrBadDigest
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := os.Remove(s.path(digest)); err != nil {
		return notFound(err)
	}
	return nil
}

// List returns every stored blob, ordered by digest.
func (s *Store) List() ([]Blob, error) {
	var out []Blob
	err := s.walk(func(digest string, fi fs.FileInfo) error {
		out = append(out, Blob{SHA256: digest, Size: fi.Size()})
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].SHA256 < out[j].SHA256 })
	return out, err
}

// walk calls fn for each stored blob. Names that are not valid digests in
// their right prefix directory are skipped rather than trusted: they were
// not written by this package.
func (s *Store) walk(fn func(digest string, fi fs.FileInfo) error) error {
	prefixes, err := os.ReadDir(s.blobRoot())
	if err != nil {
		return fmt.Errorf("blobstore: %w", err)
	}
	for _, p := range prefixes {
		if !p.IsDir() || len(p.Name()) != 2 {
			continue
		}
		entries, err := os.ReadDir(filepath.Join(s.blobRoot(), p.Name()))
		if err != nil {
			return fmt.Errorf("blobstore: %w", err)
		}
		for _, e := range entries {
			name := e.Name()
			if !e.Type().IsRegular() || !ValidDigest(name) || name[:2] != p.Name() {
				continue
			}
			fi, err := e.Info()
			if errors.Is(err, fs.ErrNotExist) {
				continue // deleted since ReadDir
			}
			if err != nil {
				return fmt.Errorf("blobstore: %w", err)
			}
			if err := fn(name, fi); err != nil {
				return err
			}
		}
	}
	return nil
}

func notFound(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return ErrNotFound
	}
	return fmt.Errorf("blobstore: %w", err)
}

// ctxReader stops a long upload promptly when its request is cancelled,
// instead of writing the rest of the body to a temp file nobody will use.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
