package blobstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func newStore(t *testing.T, opts ...Option) *Store {
	t.Helper()
	s, err := New(t.TempDir(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// assertNothingStored fails the test if an upload left a temp file or committed a blob
// it should not have.
func assertNothingStored(t *testing.T, s *Store) {
	t.Helper()
	blobs, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(blobs) != 0 {
		t.Errorf("blobs stored: %v", blobs)
	}
	tmp, _ := os.ReadDir(s.tmpDir())
	if len(tmp) != 0 {
		t.Errorf("temp files left: %d", len(tmp))
	}
}

func TestPutOpenRoundTrip(t *testing.T) {
	s := newStore(t)
	data := []byte("hello, slug")
	ctx := context.Background()

	b, err := s.Put(ctx, bytes.NewReader(data), "")
	if err != nil {
		t.Fatal(err)
	}
	want := Blob{SHA256: digestOf(data), Size: int64(len(data))}
	if b != want {
		t.Fatalf("Put = %+v, want %+v", b, want)
	}
	if _, err := os.Stat(filepath.Join(s.dir, "sha256", want.SHA256[:2], want.SHA256)); err != nil {
		t.Fatalf("blob not at its content address: %v", err)
	}

	f, got, err := s.Open(want.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	content, _ := io.ReadAll(f)
	if got != want || !bytes.Equal(content, data) {
		t.Fatalf("Open = %+v %q", got, content)
	}
	if st, err := s.Stat(want.SHA256); err != nil || st != want {
		t.Fatalf("Stat = %+v, %v", st, err)
	}

	// Idempotent, with and without the expected digest.
	if b2, err := s.Put(ctx, bytes.NewReader(data), want.SHA256); err != nil || b2 != want {
		t.Fatalf("second Put = %+v, %v", b2, err)
	}
	if list, err := s.List(); err != nil || len(list) != 1 || list[0] != want {
		t.Fatalf("List = %+v, %v", list, err)
	}

	if err := s.Delete(want.SHA256); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stat(want.SHA256); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Stat after Delete: %v", err)
	}
	if err := s.Delete(want.SHA256); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second Delete: %v", err)
	}
	assertNothingStored(t, s)
}

func TestPutRejects(t *testing.T) {
	s := newStore(t, WithMaxSize(10))
	ctx := context.Background()

	_, err := s.Put(ctx, strings.NewReader("abc"), digestOf([]byte("xyz")))
	if !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("mismatch: %v", err)
	}
	assertNothingStored(t, s)

	_, err = s.Put(ctx, strings.NewReader("01234567890"), "")
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversize: %v", err)
	}
	assertNothingStored(t, s)

	// Exactly at the cap is fine.
	if _, err := s.Put(ctx, strings.NewReader("0123456789"), ""); err != nil {
		t.Fatalf("at cap: %v", err)
	}

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Put(cctx, strings.NewReader("x"), ""); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}

func TestDigestValidation(t *testing.T) {
	s := newStore(t)
	good := digestOf([]byte("x"))
	bad := []string{
		"", "../x", "..", "abc", strings.ToUpper(good), good[:63], good + "0",
		"../../../../etc/passwd" + good[:42], good[:62] + "/a", good[:63] + "g",
	}
	for _, d := range bad {
		if ValidDigest(d) {
			t.Errorf("ValidDigest(%q) = true", d)
		}
		if _, err := s.Stat(d); !errors.Is(err, ErrBadDigest) {
			t.Errorf("Stat(%q): %v", d, err)
		}
		if _, _, err := s.Open(d); !errors.Is(err, ErrBadDigest) {
			t.Errorf("Open(%q): %v", d, err)
		}
		if err := s.Delete(d); !errors.Is(err, ErrBadDigest) {
			t.Errorf("Delete(%q): %v", d, err)
		}
		if d != "" {
			if _, err := s.Put(context.Background(), strings.NewReader("x"), d); !errors.Is(err, ErrBadDigest) {
				t.Errorf("Put(%q): %v", d, err)
			}
		}
	}
	if !ValidDigest(good) {
		t.Error("valid digest rejected")
	}
}

func TestConcurrentPutSameBlob(t *testing.T) {
	s := newStore(t)
	data := bytes.Repeat([]byte("concurrent "), 10000)
	want := digestOf(data)
	const n = 16
	var wg sync.WaitGroup
	errs := make([]error, n)
	created := make([]bool, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var b Blob
			b, created[i], errs[i] = s.put(context.Background(), bytes.NewReader(data), want)
			if errs[i] == nil && b.SHA256 != want {
				errs[i] = errors.New("wrong digest " + b.SHA256)
			}
		}()
	}
	wg.Wait()
	nCreated := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("put %d: %v", i, errs[i])
		}
		if created[i] {
			nCreated++
		}
	}
	if nCreated != 1 {
		t.Errorf("%d puts reported creating the blob, want 1", nCreated)
	}
	f, _, err := s.Open(want)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, _ := io.ReadAll(f)
	if !bytes.Equal(got, data) {
		t.Fatal("stored content differs")
	}
	tmp, _ := os.ReadDir(s.tmpDir())
	if len(tmp) != 0 {
		t.Errorf("temp files left: %d", len(tmp))
	}
}

func TestGC(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	s := newStore(t, WithClock(clock), WithGCGrace(time.Minute))
	ctx := context.Background()

	var digests []string
	for _, c := range []string{"a", "b", "c", "d"} {
		b, err := s.Put(ctx, strings.NewReader(c), "")
		if err != nil {
			t.Fatal(err)
		}
		digests = append(digests, b.SHA256)
	}
	keep := map[string]bool{digests[0]: true, digests[2]: true}
	keepFn := func(d string) bool { return keep[d] }

	// Within the grace period nothing goes: the releases may be on their way.
	removed, err := s.GC(keepFn)
	if err != nil || len(removed) != 0 {
		t.Fatalf("GC in grace = %v, %v", removed, err)
	}

	now = now.Add(2 * time.Minute)
	// A re-upload refreshes the grace period of an existing blob.
	if _, err := s.Put(ctx, strings.NewReader("d"), digests[3]); err != nil {
		t.Fatal(err)
	}

	// A stale temp file from a crashed upload, and a fresh one in progress.
	stale := filepath.Join(s.tmpDir(), "put-stale")
	fresh := filepath.Join(s.tmpDir(), "put-fresh")
	for _, p := range []string{stale, fresh} {
		if err := os.WriteFile(p, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	old := now.Add(-2 * time.Hour)
	os.Chtimes(stale, old, old)
	os.Chtimes(fresh, now, now)

	removed, err = s.GC(keepFn)
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 1 || removed[0] != digests[1] {
		t.Fatalf("removed %v, want [%s]", removed, digests[1])
	}
	for i, d := range digests {
		_, err := s.Stat(d)
		if gone := errors.Is(err, ErrNotFound); gone != (i == 1) {
			t.Errorf("blob %d: Stat err %v", i, err)
		}
	}
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale temp file kept: %v", err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("fresh temp file removed: %v", err)
	}

	// Once its grace has passed, the re-uploaded blob goes too.
	now = now.Add(2 * time.Minute)
	removed, err = s.GC(keepFn)
	if err != nil || len(removed) != 1 || removed[0] != digests[3] {
		t.Fatalf("GC = %v, %v; want [%s]", removed, err, digests[3])
	}
}
