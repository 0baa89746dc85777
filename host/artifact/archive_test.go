package artifact

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// Helpers shared by the extraction, cache and fuzz tests: archives built
// entry by entry with archive/tar, and a sandbox whose every byte outside
// dest can be compared before and after.

type ent struct {
	hdr  tar.Header
	body string
	// headerOnly writes the header and stops, leaving the archive
	// truncated: a way to declare a huge size without writing the data.
	headerOnly bool
}

var testTime = time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC)

func reg(name, body string, mode int64) ent {
	return ent{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, ModTime: testTime}, body: body}
}

func dirEnt(name string, mode int64) ent {
	return ent{hdr: tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode, ModTime: testTime}}
}

func sym(name, target string) ent {
	return ent{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777, ModTime: testTime}}
}

func hard(name, target string) ent {
	return ent{hdr: tar.Header{Typeflag: tar.TypeLink, Name: name, Linkname: target, Mode: 0o644, ModTime: testTime}}
}

func special(name string, typ byte) ent {
	return ent{hdr: tar.Header{Typeflag: typ, Name: name, Mode: 0o666, Devmajor: 1, Devminor: 3, ModTime: testTime}}
}

func buildArchive(tb testing.TB, gz bool, ents ...ent) []byte {
	tb.Helper()
	var buf bytes.Buffer
	var zw *gzip.Writer
	tw := tar.NewWriter(&buf)
	if gz {
		zw = gzip.NewWriter(&buf)
		tw = tar.NewWriter(zw)
	}
	complete := true
	for _, e := range ents {
		h := e.hdr
		if h.Typeflag == tar.TypeReg && !e.headerOnly {
			h.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(&h); err != nil {
			tb.Fatalf("write header %q: %v", h.Name, err)
		}
		if e.headerOnly {
			complete = false
			break
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			tb.Fatal(err)
		}
	}
	if complete {
		if err := tw.Close(); err != nil {
			tb.Fatal(err)
		}
	}
	if zw != nil {
		if err := zw.Close(); err != nil {
			tb.Fatal(err)
		}
	}
	return buf.Bytes()
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// sandbox is base/{canary, outside/file, dest}: relative escapes from dest
// land in base, so any change to base other than dest appearing is an
// escape (or a leftover temp directory).
type sandbox struct {
	base, dest string
	before     map[string]string
}

func newSandbox(tb testing.TB) *sandbox {
	tb.Helper()
	base := tb.TempDir()
	must(tb, os.WriteFile(filepath.Join(base, "canary"), []byte("canary: do not touch\n"), 0o644))
	must(tb, os.Mkdir(filepath.Join(base, "outside"), 0o755))
	must(tb, os.WriteFile(filepath.Join(base, "outside", "file"), []byte("outside\n"), 0o644))
	s := &sandbox{base: base, dest: filepath.Join(base, "dest")}
	s.before = snapshot(tb, base, "dest")
	return s
}

// checkOutside fails if anything in base but dest changed.
func (s *sandbox) checkOutside(tb testing.TB) {
	tb.Helper()
	after := snapshot(tb, s.base, "dest")
	if d := diffSnap(s.before, after); d != "" {
		tb.Fatalf("files outside dest changed:\n%s", d)
	}
}

// snapshot describes every file under dir (but skip) by type, mode,
// content or link target, so a comparison catches any write.
func snapshot(tb testing.TB, dir, skip string) map[string]string {
	tb.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == skip {
			return filepath.SkipDir
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		desc := fi.Mode().String()
		switch {
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			desc += " " + sha(b)
		case fi.Mode()&fs.ModeSymlink != 0:
			t, _ := os.Readlink(p)
			desc += " -> " + t
		}
		m[rel] = desc
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

func diffSnap(a, b map[string]string) string {
	var out []string
	for k, v := range a {
		if w, ok := b[k]; !ok {
			out = append(out, fmt.Sprintf("- %s %s", k, v))
		} else if v != w {
			out = append(out, fmt.Sprintf("~ %s %s => %s", k, v, w))
		}
	}
	for k, v := range b {
		if _, ok := a[k]; !ok {
			out = append(out, fmt.Sprintf("+ %s %s", k, v))
		}
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

func must(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}

// etcProbe is a name that must never appear in /etc: the archives that
// aim at /etc write this rather than passwd, so that even a broken
// extractor running as root cannot damage the machine.
var etcProbe = fmt.Sprintf("pier-artifact-test-%d", os.Getpid())

// hostile lists one archive per escape the extractor must refuse; base is
// the sandbox, for absolute names that point into it.
type hostileCase struct {
	name   string
	ents   func(base string) []ent
	lim    Limits
	want   error
	reason string // substring of the error
}

func hostileCases() []hostileCase {
	one := func(es ...ent) func(string) []ent { return func(string) []ent { return es } }
	return []hostileCase{
		{"dotdot", one(reg("../x", "x", 0o644)), Limits{}, ErrUnsafe, "escapes"},
		{"dotdot nested", one(reg("a/../../x", "x", 0o644)), Limits{}, ErrUnsafe, "escapes"},
		{"dotdot after dir", one(dirEnt("a/", 0o755), reg("a/b/../../../outside/file", "x", 0o644)), Limits{}, ErrUnsafe, "escapes"},
		{"dotdot alone", one(dirEnt("../", 0o755)), Limits{}, ErrUnsafe, "escapes"},
		{"absolute into sandbox", func(base string) []ent {
			return []ent{reg(filepath.Join(base, "outside", "abs"), "x", 0o644)}
		}, Limits{}, ErrUnsafe, "absolute path"},
		{"absolute tmp", one(reg("/tmp/"+etcProbe, "x", 0o644)), Limits{}, ErrUnsafe, "absolute path"},
		{"symlink to /etc then write through", one(sym("a", "/etc"), reg("a/"+etcProbe, "pwned", 0o644)), Limits{}, ErrUnsafe, "absolute symlink"},
		{"symlink to absolute sandbox then write through", func(base string) []ent {
			return []ent{sym("a", filepath.Join(base, "outside")), reg("a/file", "pwned", 0o644)}
		}, Limits{}, ErrUnsafe, "absolute symlink"},
		{"symlink up two then write through", one(sym("a", "../../"), reg("a/x", "pwned", 0o644)), Limits{}, ErrUnsafe, "escapes"},
		{"symlink to parent", one(sym("a", ".."), reg("a/canary", "pwned", 0o644)), Limits{}, ErrUnsafe, "escapes"},
		{"nested symlink escape", one(dirEnt("d/", 0o755), sym("d/l", "../../outside")), Limits{}, ErrUnsafe, "escapes"},
		{"dotdot through a link", one(sym("s", "."), sym("t", "s/../outside"), reg("t/file", "pwned", 0o644)), Limits{}, ErrUnsafe, "'..' after a name"},
		{"link beneath a link", one(dirEnt("sub/", 0o755), sym("sub/a", ".."), sym("sub/a/b", ".."), reg("sub/a/b/canary", "pwned", 0o644)), Limits{}, ErrUnsafe, "through symlink"},
		{"write through an inside link", one(dirEnt("real/", 0o755), sym("l", "real"), reg("l/x", "x", 0o644)), Limits{}, ErrUnsafe, "through symlink"},
		{"hard link to /etc/passwd", one(hard("p", "/etc/passwd")), Limits{}, ErrUnsafe, "absolute path"},
		{"hard link outside", one(hard("p", "../outside/file")), Limits{}, ErrUnsafe, "escapes"},
		{"hard link nested outside", one(hard("p", "a/../../canary")), Limits{}, ErrUnsafe, "escapes"},
		{"hard link absolute into sandbox", func(base string) []ent {
			return []ent{hard("p", filepath.Join(base, "canary"))}
		}, Limits{}, ErrUnsafe, "absolute path"},
		{"hard link before target", one(hard("p", "later"), reg("later", "x", 0o644)), Limits{}, ErrUnsafe, "not yet extracted"},
		{"hard link to a symlink", one(dirEnt("deep/a/", 0o755), sym("deep/a/l", "../../x"), hard("top", "deep/a/l")), Limits{}, ErrUnsafe, "other than a regular file"},
		{"hard link through a symlink", one(reg("f", "x", 0o644), sym("l", "."), hard("x", "l/f")), Limits{}, ErrUnsafe, "below real directories"},
		{"hard link to a directory", one(dirEnt("d/", 0o755), hard("x", "d")), Limits{}, ErrUnsafe, "other than a regular file"},
		{"char device", one(special("null", tar.TypeChar)), Limits{}, ErrUnsafe, "device"},
		{"block device", one(special("sda", tar.TypeBlock)), Limits{}, ErrUnsafe, "device"},
		{"fifo", one(special("pipe", tar.TypeFifo)), Limits{}, ErrUnsafe, "FIFO"},
		{"unknown type", one(special("cont", tar.TypeCont)), Limits{}, ErrUnsafe, "unsupported"},
		{"duplicate file", one(reg("f", "1", 0o644), reg("f", "2", 0o644)), Limits{}, ErrUnsafe, "duplicate"},
		{"file replaces dir", one(dirEnt("d/", 0o755), reg("d", "x", 0o644)), Limits{}, ErrUnsafe, "duplicate"},
		{"dir replaces file", one(reg("f", "x", 0o644), dirEnt("f/", 0o755)), Limits{}, ErrUnsafe, "duplicate"},
		{"file replaces symlink", one(reg("t", "x", 0o644), sym("l", "t"), reg("l", "pwned", 0o644)), Limits{}, ErrUnsafe, "duplicate"},
		{"file beneath file", one(reg("f", "x", 0o644), reg("f/x", "x", 0o644)), Limits{}, ErrUnsafe, "non-directory"},
		{"replaces root", one(reg(".", "x", 0o644)), Limits{}, ErrUnsafe, "destination itself"},
		{"too many entries", one(reg("a", "", 0o644), reg("b", "", 0o644), reg("c", "", 0o644), reg("d", "", 0o644)), Limits{MaxEntries: 3}, ErrLimit, "entries"},
		{"total size", one(reg("a", "123456", 0o644), reg("b", "123456", 0o644)), Limits{MaxTotalSize: 10}, ErrLimit, "total size"},
		{"file size", one(reg("a", "12345", 0o644)), Limits{MaxFileSize: 4}, ErrLimit, "file of 5 bytes"},
		{"huge declared file", one(ent{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "huge", Size: 1 << 40, Mode: 0o644}, headerOnly: true}), Limits{}, ErrLimit, "file of"},
		{"long name", one(reg(strings.Repeat("n", 17), "", 0o644)), Limits{MaxPathLen: 16}, ErrLimit, "longer than"},
		{"long link target", one(sym("l", strings.Repeat("t", 17))), Limits{MaxPathLen: 16}, ErrLimit, "longer than"},
		{"header bomb", one(ent{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "f", Mode: 0o644,
			PAXRecords: map[string]string{"comment": strings.Repeat("x", 64<<10)}}}), Limits{MaxArchiveSize: 16 << 10}, ErrLimit, "stream over"},
	}
}
