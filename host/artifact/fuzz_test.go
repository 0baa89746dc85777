package artifact

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzExtract feeds arbitrary bytes to Extract and checks the one property
// that matters whatever the input: nothing outside dest changes, a failure
// leaves no dest, and a success leaves only directories, regular files
// without special bits, and symlinks that resolve inside dest. The seeds are
// every hostile archive of the tests plus the good slug, gzipped and plain.
func FuzzExtract(f *testing.F) {
	const seedBase = "/tmp/pier-fuzz-base" // absolute names in seeds; refused anyway
	for _, tc := range hostileCases() {
		f.Add(buildArchive(f, true, tc.ents(seedBase)...))
		f.Add(buildArchive(f, false, tc.ents(seedBase)...))
	}
	f.Add(buildArchive(f, true, goodSlug()...))
	f.Add(buildArchive(f, false, goodSlug()...))
	lim := Limits{MaxTotalSize: 1 << 20, MaxEntries: 256, MaxPathLen: 1024, MaxArchiveSize: 4 << 20}
	f.Fuzz(func(t *testing.T, data []byte) {
		s := newSandbox(t)
		err := Extract(bytes.NewReader(data), s.dest, lim)
		s.checkOutside(t)
		if err != nil {
			if _, serr := os.Lstat(s.dest); !errors.Is(serr, fs.ErrNotExist) {
				t.Fatalf("dest exists after error %v", err)
			}
			return
		}
		checkTree(t, s.dest)
	})
}

// checkTree asserts what a successful extraction may leave behind.
func checkTree(t *testing.T, dest string) {
	t.Helper()
	err := filepath.WalkDir(dest, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dest, p)
		m := fi.Mode()
		if m&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) != 0 {
			t.Errorf("%s: special bits in %v", rel, m)
		}
		switch {
		case m.IsDir(), m.IsRegular():
		case m&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if why := checkSymlinkTarget(filepath.ToSlash(rel), target); why != "" {
				t.Errorf("%s -> %s: %s", rel, target, why)
			}
			// Where the kernel actually lands, for links that resolve.
			if real, err := filepath.EvalSymlinks(p); err == nil {
				realDest, _ := filepath.EvalSymlinks(dest)
				if real != realDest && !strings.HasPrefix(real, realDest+string(filepath.Separator)) {
					t.Errorf("%s -> %s resolves outside dest to %s", rel, target, real)
				}
			}
		default:
			t.Errorf("%s: unexpected file type %v", rel, m)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
