package tarball

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pierpaas/pier/host/artifact"
)

var mtime = time.Unix(1_700_000_000, 123_456_789)

var (
	longDir  = strings.Repeat("d", 120)
	longFile = longDir + "/" + strings.Repeat("f", 150)
)

// buildTree makes a source tree with one of everything Pack meets. It
// returns the directory and the names Pack must skip with a warning.
func buildTree(t *testing.T) (string, []string) {
	t.Helper()
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	big := make([]byte, 300<<10)
	for i := range big {
		big[i] = byte(rng.IntN(256))
	}
	files := []struct {
		name string
		data []byte
		perm fs.FileMode
	}{
		{"Procfile", []byte("web: ./bin/server\n"), 0o644},
		{"bin/server", []byte("#!/bin/sh\nexec sleep 1\n"), 0o755},
		{"secret.txt", []byte("s"), 0o600},
		{"empty", nil, 0o644},
		{"héllo wörld.txt", []byte("unicode"), 0o644},
		{"data/big.bin", big, 0o644},
		{"ro/file", []byte("in a read-only dir"), 0o444},
		{longFile, []byte("long name"), 0o644},
		{".git/config", []byte("[core]\n"), 0o644},
		{".git/objects/ab/cdef", []byte("object"), 0o444},
		{"sub/.git", []byte("gitdir: ../.git/modules/sub\n"), 0o644},
		{"sub/.git-keep", []byte("not git"), 0o644},
		{"sub/inner/.git/HEAD", []byte("ref: refs/heads/main\n"), 0o644},
	}
	for _, f := range files {
		p := filepath.Join(dir, f.name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, f.data, f.perm); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, f.perm); err != nil { // beat the umask
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "emptydir"), 0o750); err != nil {
		t.Fatal(err)
	}
	links := map[string]string{
		"current":       "bin/server",
		"bin/up":        "../Procfile",
		"bin/self":      ".",
		"dangling":      "missing",
		"dirlink":       "bin",
		"data/deep":     "./../bin/./server",
		"abs":           "/etc/passwd",
		"bin/out":       "../../outside",
		"weird":         "bin/../Procfile",
		"ro-link-to-up": "..",
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	l, err := net.Listen("unix", filepath.Join(dir, "app.sock"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Directory modes and times last: creating entries changes them.
	if err := os.Chmod(filepath.Join(dir, "ro"), 0o555); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(filepath.Join(dir, "ro"), 0o755) })
	for _, d := range []string{"bin", "data", "ro", "sub", "emptydir", longDir} {
		if err := os.Chtimes(filepath.Join(dir, d), mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	return dir, []string{"abs", "app.sock", "bin/out", "fifo", "ro-link-to-up", "weird"}
}

func packTree(t *testing.T, dir string) ([]byte, Stats, []string) {
	t.Helper()
	var buf bytes.Buffer
	var warnings []string
	st, err := Pack(context.Background(), dir, &buf, Options{Warn: func(s string) { warnings = append(warnings, s) }})
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), st, warnings
}

// TestPackRoundTrip packs a tree and unpacks it with the host's own
// extractor: the host must accept it, and the result must be the tree
// minus .git and the skipped entries.
func TestPackRoundTrip(t *testing.T) {
	dir, skipped := buildTree(t)
	archive, st, warnings := packTree(t, dir)

	if len(warnings) != len(skipped) || st.Skipped != len(skipped) {
		t.Fatalf("warnings %q (Skipped %d); want one for each of %v", warnings, st.Skipped, skipped)
	}
	slices.Sort(warnings)
	for i, name := range skipped {
		if !strings.HasPrefix(warnings[i], "skipped "+name+": ") {
			t.Errorf("warning %q; want one for %s", warnings[i], name)
		}
	}
	for _, w := range []string{"socket", "named pipe", "absolute target", "outside", "'..' after a name"} {
		if !strings.Contains(strings.Join(warnings, "\n"), w) {
			t.Errorf("no warning says %q: %q", w, warnings)
		}
	}

	out := filepath.Join(t.TempDir(), "app")
	t.Cleanup(func() { os.Chmod(filepath.Join(out, "ro"), 0o755) }) // so a non-root TempDir can go
	if err := artifact.Extract(bytes.NewReader(archive), out, artifact.Limits{}); err != nil {
		t.Fatalf("artifact.Extract refused the archive: %v", err)
	}
	want := describeTree(t, dir, func(name string) bool {
		return slices.Contains(skipped, name) || filepath.Base(name) == ".git" ||
			strings.Contains(name, "/.git/") || strings.HasPrefix(name, ".git/")
	})
	got := describeTree(t, out, nil)
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s: extracted %q, want %q", name, got[name], w)
		}
	}
	for name, g := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("%s: extracted %q, not in the source", name, g)
		}
	}

	wantStats := Stats{Files: 9, Dirs: 7, Symlinks: 6, Skipped: 6, Size: st.Size, Written: int64(len(archive))}
	if st != wantStats {
		t.Errorf("Stats %+v, want %+v", st, wantStats)
	}
	if st.Size < 300<<10 {
		t.Errorf("Size %d, smaller than the big file", st.Size)
	}
}

// describeTree maps each path below root to its type, permissions,
// content digest or link target, and mtime to the second.
func describeTree(t *testing.T, root string, skip func(string) bool) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if rel == "." {
			return nil
		}
		if skip != nil && skip(rel) {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			m[rel] = "link -> " + target
		case fi.IsDir():
			m[rel] = fmt.Sprintf("dir %o %d", fi.Mode().Perm(), fi.ModTime().Unix())
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			m[rel] = fmt.Sprintf("file %o %d %x", fi.Mode().Perm(), fi.ModTime().Unix(), sha256.Sum256(b))
		default:
			m[rel] = "special " + fi.Mode().String()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestPackDeterministicAndAnonymous(t *testing.T) {
	dir, _ := buildTree(t)
	a, _, _ := packTree(t, dir)
	b, _, _ := packTree(t, dir)
	if !bytes.Equal(a, b) {
		t.Fatal("two packs of one tree differ")
	}
	zr, err := gzip.NewReader(bytes.NewReader(a))
	if err != nil {
		t.Fatal(err)
	}
	if !zr.ModTime.IsZero() || zr.Name != "" {
		t.Errorf("gzip header carries mtime %v name %q", zr.ModTime, zr.Name)
	}
	tr := tar.NewReader(zr)
	var names []string
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, hdr.Name)
		if hdr.Uid != 0 || hdr.Gid != 0 || hdr.Uname != "" || hdr.Gname != "" {
			t.Errorf("%s: owner %d:%d %q:%q", hdr.Name, hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname)
		}
		if !hdr.AccessTime.IsZero() || !hdr.ChangeTime.IsZero() || hdr.ModTime.Nanosecond() != 0 {
			t.Errorf("%s: times %v %v %v", hdr.Name, hdr.AccessTime, hdr.ChangeTime, hdr.ModTime)
		}
		if hdr.Typeflag == tar.TypeDir && !strings.HasSuffix(hdr.Name, "/") {
			t.Errorf("directory %s without a trailing slash", hdr.Name)
		}
		if strings.HasPrefix(hdr.Name, "/") || strings.HasPrefix(hdr.Name, "./") || hdr.Name == "./" {
			t.Errorf("name %q is not relative to the tree", hdr.Name)
		}
		if strings.Contains("/"+hdr.Name, "/.git/") || strings.HasSuffix(hdr.Name, "/.git") {
			t.Errorf("%s: .git was packed", hdr.Name)
		}
	}
	// The walk is depth-first and sorted within each directory.
	wantPrefix := []string{"Procfile", "bin/", "bin/self", "bin/server", "bin/up", "current", "dangling", "data/", "data/big.bin", "data/deep"}
	if !slices.Equal(names[:len(wantPrefix)], wantPrefix) {
		t.Errorf("archive order %q, want it to start %q", names, wantPrefix)
	}
}

func TestPackProgress(t *testing.T) {
	dir, _ := buildTree(t)
	var buf bytes.Buffer
	var seen []int64
	st, err := Pack(context.Background(), dir, &buf, Options{Progress: func(n int64) { seen = append(seen, n) }})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) < 2 || !slices.IsSorted(seen) || seen[len(seen)-1] != int64(buf.Len()) || st.Written != int64(buf.Len()) {
		t.Fatalf("progress %v, Written %d, output %d bytes", seen, st.Written, buf.Len())
	}
}

func TestPackSymlinkedRoot(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), "app")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	st, err := Pack(context.Background(), link, io.Discard, Options{})
	if err != nil || st.Files != 1 {
		t.Fatalf("Pack(symlink to dir) = %+v, %v; want 1 file", st, err)
	}
}

func TestPackEmptyDirExtracts(t *testing.T) {
	var buf bytes.Buffer
	if _, err := Pack(context.Background(), t.TempDir(), &buf, Options{}); err != nil {
		t.Fatal(err)
	}
	if err := artifact.Extract(&buf, filepath.Join(t.TempDir(), "app"), artifact.Limits{}); err != nil {
		t.Fatalf("empty tree: %v", err)
	}
}

func TestPackErrors(t *testing.T) {
	dir, _ := buildTree(t)
	file := filepath.Join(dir, "Procfile")
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	bg := context.Background()
	for _, tc := range []struct {
		name   string
		ctx    context.Context
		dir    string
		lim    limits
		wantIs error
		want   string
	}{
		{"missing", bg, filepath.Join(dir, "nope"), defaultLimits, fs.ErrNotExist, "no such file"},
		{"not a dir", bg, file, defaultLimits, nil, "not a directory"},
		{"cancelled", cancelled, dir, defaultLimits, context.Canceled, "canceled"},
		{"entries", bg, dir, limits{entries: 5, total: 1 << 30, pathLen: 4096}, ErrTooLarge, "more than 5 files"},
		{"size", bg, dir, limits{entries: 100, total: 100 << 10, pathLen: 4096}, ErrTooLarge, "100.0 KiB"},
		{"path", bg, dir, limits{entries: 100, total: 1 << 30, pathLen: 200}, ErrTooLarge, "longer than 200"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := pack(tc.ctx, tc.dir, io.Discard, Options{}, tc.lim)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "tarball: ") {
				t.Fatalf("Pack = %v; want a tarball: error containing %q", err, tc.want)
			}
			if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
				t.Fatalf("Pack = %v; want errors.Is %v", err, tc.wantIs)
			}
		})
	}
}

func TestPackUnreadableFile(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads everything")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "locked"), []byte("x"), 0o000); err != nil {
		t.Fatal(err)
	}
	if _, err := Pack(context.Background(), dir, io.Discard, Options{}); !errors.Is(err, fs.ErrPermission) {
		t.Fatalf("Pack = %v; want a permission error, not a silent skip", err)
	}
}

type failWriter struct{ after int }

func (w *failWriter) Write(b []byte) (int, error) {
	if w.after -= len(b); w.after < 0 {
		return 0, errors.New("disk full")
	}
	return len(b), nil
}

func TestPackWriteError(t *testing.T) {
	dir, _ := buildTree(t)
	_, err := Pack(context.Background(), dir, &failWriter{after: 1000}, Options{})
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("Pack = %v; want the writer's error", err)
	}
}

// TestSymlinkRuleMatchesExtract checks symlinkProblem against the real
// extractor, link by link: Pack must skip exactly what Extract refuses.
func TestSymlinkRuleMatchesExtract(t *testing.T) {
	for _, tc := range []struct{ link, target string }{
		{"a", "b"}, {"a", "."}, {"a", "./b"}, {"a", ".."}, {"a", "../b"},
		{"d/a", ".."}, {"d/a", "../b"}, {"d/a", "../.."}, {"d/a", "../../b"},
		{"d/e/a", "../../b"}, {"d/e/a", "../../../b"}, {"d/a", "x/../b"},
		{"d/a", "./../b"}, {"a", "/etc/passwd"}, {"a", "/"}, {"d/a", "..//b"},
		{"d/a", "b/.."}, {"a", "b//c/"},
	} {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		if dir := filepath.Dir(tc.link); dir != "." {
			tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "d/", Mode: 0o755})
			if dir == "d/e" {
				tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "d/e/", Mode: 0o755})
			}
		}
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: tc.link, Linkname: tc.target})
		tw.Close()
		extractErr := artifact.Extract(&buf, filepath.Join(t.TempDir(), "x"), artifact.Limits{})
		why := symlinkProblem(tc.link, tc.target)
		if (why == "") != (extractErr == nil) {
			t.Errorf("%s -> %s: symlinkProblem %q, Extract %v", tc.link, tc.target, why, extractErr)
		}
	}
}
