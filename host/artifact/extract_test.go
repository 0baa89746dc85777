package artifact

import (
	"archive/tar"
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestExtractRejectsHostileArchives(t *testing.T) {
	for _, tc := range hostileCases() {
		for _, gz := range []bool{true, false} {
			name := tc.name + map[bool]string{true: "/gzip", false: "/tar"}[gz]
			t.Run(name, func(t *testing.T) {
				s := newSandbox(t)
				data := buildArchive(t, gz, tc.ents(s.base)...)
				err := Extract(bytes.NewReader(data), s.dest, tc.lim)
				if !errors.Is(err, tc.want) {
					t.Fatalf("err = %v, want %v", err, tc.want)
				}
				if !strings.Contains(err.Error(), tc.reason) {
					t.Errorf("err = %q, want it to mention %q", err, tc.reason)
				}
				var ee *EntryError
				if errors.Is(err, ErrUnsafe) && !errors.As(err, &ee) {
					t.Errorf("unsafe entry error %v is not an *EntryError", err)
				}
				if _, err := os.Lstat(s.dest); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("dest exists after a rejection (lstat: %v)", err)
				}
				s.checkOutside(t)
				if _, err := os.Lstat(filepath.Join("/etc", etcProbe)); err == nil {
					os.Remove(filepath.Join("/etc", etcProbe))
					t.Fatalf("archive wrote into /etc")
				}
				if _, err := os.Lstat(filepath.Join("/tmp", etcProbe)); err == nil {
					os.Remove(filepath.Join("/tmp", etcProbe))
					t.Fatalf("archive wrote into /tmp")
				}
			})
		}
	}
}

func TestExtractRejectsBrokenStreams(t *testing.T) {
	good := buildArchive(t, true, reg("a", strings.Repeat("data ", 1000), 0o644), reg("b", "b", 0o644))
	corrupt := bytes.Clone(good)
	corrupt[len(corrupt)-6] ^= 0xff // inside the gzip CRC32 trailer
	for name, data := range map[string][]byte{
		"empty":            nil,
		"one byte":         {0x1f},
		"garbage":          bytes.Repeat([]byte("not a tar archive "), 100),
		"truncated":        good[:len(good)/2],
		"corrupt crc":      corrupt,
		"gzip header only": good[:10],
	} {
		t.Run(name, func(t *testing.T) {
			s := newSandbox(t)
			if err := Extract(bytes.NewReader(data), s.dest, Limits{}); err == nil {
				t.Fatal("Extract succeeded")
			}
			if _, err := os.Lstat(s.dest); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("dest exists after a failure")
			}
			s.checkOutside(t)
		})
	}
}

func TestExtractRefusesExistingDest(t *testing.T) {
	s := newSandbox(t)
	must(t, os.Mkdir(s.dest, 0o755))
	data := buildArchive(t, true, reg("a", "a", 0o644))
	if err := Extract(bytes.NewReader(data), s.dest, Limits{}); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("err = %v, want fs.ErrExist", err)
	}
}

func TestExtractStripsSpecialBits(t *testing.T) {
	s := newSandbox(t)
	data := buildArchive(t, true,
		reg("suid", "x", 0o4755),
		reg("sgid", "x", 0o2750),
		reg("all", "x", 0o7777),
		dirEnt("sticky/", 0o1777),
		dirEnt("sgiddir/", 0o2775),
	)
	must(t, Extract(bytes.NewReader(data), s.dest, Limits{}))
	want := map[string]fs.FileMode{
		"suid": 0o755, "sgid": 0o750, "all": 0o777,
		"sticky": fs.ModeDir | 0o777, "sgiddir": fs.ModeDir | 0o775,
	}
	for name, mode := range want {
		fi, err := os.Lstat(filepath.Join(s.dest, name))
		must(t, err)
		if fi.Mode() != mode {
			t.Errorf("%s: mode %v, want %v", name, fi.Mode(), mode)
		}
		if fi.Mode()&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) != 0 {
			t.Errorf("%s: special bits survived: %v", name, fi.Mode())
		}
	}
	s.checkOutside(t)
}

// TestExtractOwner gives the tree to the user jobs run as, links
// included (without following them).
func TestExtractOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root, as the host agent runs")
	}
	s := newSandbox(t)
	must(t, Extract(bytes.NewReader(buildArchive(t, true, goodSlug()...)), s.dest, Limits{Owner: &Owner{UID: 4321, GID: 4322}}))
	n := 0
	must(t, filepath.WalkDir(s.dest, func(path string, _ fs.DirEntry, err error) error {
		must(t, err)
		fi, err := os.Lstat(path)
		must(t, err)
		st := fi.Sys().(*syscall.Stat_t)
		if st.Uid != 4321 || st.Gid != 4322 {
			t.Errorf("%s: owned by %d:%d", path, st.Uid, st.Gid)
		}
		n++
		return nil
	}))
	if n < 3 {
		t.Fatalf("only %d entries", n)
	}
	s.checkOutside(t)
}

// goodSlug looks like what the builder produces from /app, plus the pax
// global header that `git archive` writes.
func goodSlug() []ent {
	return []ent{
		{hdr: tar.Header{Typeflag: tar.TypeXGlobalHeader, Name: "pax_global_header", PAXRecords: map[string]string{"comment": "c0ffee"}}},
		dirEnt("./", 0o755),
		reg("./Procfile", "web: bin/web\n", 0o644),
		dirEnt("./bin/", 0o755),
		reg("./bin/web", "#!/bin/sh\necho hi\n", 0o755),
		sym("./bin/run", "../lib/run.sh"),
		reg("./lib/run.sh", "#!/bin/sh\n", 0o750), // parent only implied
		reg("./lib/deep/nested/file.txt", "nested\n", 0o600),
		hard("./lib/copy.txt", "./lib/deep/nested/file.txt"),
		sym("./current", "lib/deep"),
		sym("./lib/deep/up", "../../bin/web"),
		dirEnt("./ro/", 0o555),
		reg("./ro/inside", "written before the dir became read-only\n", 0o444),
		reg("./empty", "", 0o644),
		reg("./"+strings.Repeat("long/", 30)+"name", "pax path\n", 0o644),
	}
}

func TestExtractGoodArchive(t *testing.T) {
	for _, gz := range []bool{true, false} {
		t.Run(map[bool]string{true: "gzip", false: "tar"}[gz], func(t *testing.T) {
			s := newSandbox(t)
			must(t, Extract(bytes.NewReader(buildArchive(t, gz, goodSlug()...)), s.dest, Limits{}))
			s.checkOutside(t)
			if len(snapshotNames(t, s.base)) != 3 {
				t.Errorf("base holds %v, want canary, outside and dest only", snapshotNames(t, s.base))
			}
			d := s.dest
			files := map[string]struct {
				body string
				mode fs.FileMode
			}{
				"Procfile":                           {"web: bin/web\n", 0o644},
				"bin/web":                            {"#!/bin/sh\necho hi\n", 0o755},
				"lib/run.sh":                         {"#!/bin/sh\n", 0o750},
				"lib/deep/nested/file.txt":           {"nested\n", 0o600},
				"lib/copy.txt":                       {"nested\n", 0o600},
				"ro/inside":                          {"written before the dir became read-only\n", 0o444},
				"empty":                              {"", 0o644},
				strings.Repeat("long/", 30) + "name": {"pax path\n", 0o644},
			}
			for name, w := range files {
				p := filepath.Join(d, name)
				b, err := os.ReadFile(p)
				must(t, err)
				fi, err := os.Lstat(p)
				must(t, err)
				if string(b) != w.body || fi.Mode() != w.mode {
					t.Errorf("%s: %q %v, want %q %v", name, b, fi.Mode(), w.body, w.mode)
				}
				if !fi.ModTime().Equal(testTime) {
					t.Errorf("%s: mtime %v, want %v", name, fi.ModTime(), testTime)
				}
			}
			for dir, mode := range map[string]fs.FileMode{".": 0o755, "bin": 0o755, "lib": 0o755, "lib/deep/nested": 0o755, "ro": 0o555} {
				fi, err := os.Lstat(filepath.Join(d, dir))
				must(t, err)
				if fi.Mode() != fs.ModeDir|mode {
					t.Errorf("dir %s: mode %v, want %v", dir, fi.Mode(), fs.ModeDir|mode)
				}
			}
			fi, err := os.Lstat(filepath.Join(d, "bin"))
			must(t, err)
			if !fi.ModTime().Equal(testTime) {
				t.Errorf("bin: mtime %v, want %v", fi.ModTime(), testTime)
			}
			for link, target := range map[string]string{"bin/run": "../lib/run.sh", "current": "lib/deep", "lib/deep/up": "../../bin/web"} {
				got, err := os.Readlink(filepath.Join(d, link))
				must(t, err)
				if got != target {
					t.Errorf("%s -> %q, want %q", link, got, target)
				}
			}
			if b, err := os.ReadFile(filepath.Join(d, "current", "up")); err != nil || string(b) != "#!/bin/sh\necho hi\n" {
				t.Errorf("reading through links: %q, %v", b, err)
			}
			a, err := os.Stat(filepath.Join(d, "lib/copy.txt"))
			must(t, err)
			b, err := os.Stat(filepath.Join(d, "lib/deep/nested/file.txt"))
			must(t, err)
			if !os.SameFile(a, b) {
				t.Error("hard link is a copy, not a link")
			}
			if _, err := os.Lstat(filepath.Join(d, "pax_global_header")); err == nil {
				t.Error("pax global header extracted as a file")
			}
		})
	}
}

func snapshotNames(t *testing.T, dir string) []string {
	es, err := os.ReadDir(dir)
	must(t, err)
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func TestExtractAtExactArchiveLimit(t *testing.T) {
	ents := []ent{reg("a", "abc", 0o644)}
	size := int64(len(buildArchive(t, false, ents...))) // the uncompressed stream
	gz := buildArchive(t, true, ents...)
	s := newSandbox(t)
	must(t, Extract(bytes.NewReader(gz), s.dest, Limits{MaxArchiveSize: size}))
	s = newSandbox(t)
	if err := Extract(bytes.NewReader(gz), s.dest, Limits{MaxArchiveSize: size - 1}); !errors.Is(err, ErrLimit) {
		t.Fatalf("one byte under: err = %v, want ErrLimit", err)
	}
}
