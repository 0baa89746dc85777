package blobstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAdopt: a file becomes a blob without a copy (the same inode) and
// is consumed; a wrong digest leaves it where it was and stores nothing;
// adopting a blob already stored keeps the stored one.
func TestAdopt(t *testing.T) {
	dir := t.TempDir()
	s, err := New(filepath.Join(dir, "store"))
	if err != nil {
		t.Fatal(err)
	}
	write := func(content string) string {
		p := filepath.Join(dir, "upload-"+content)
		if err := os.WriteFile(p, []byte(content), 0o640); err != nil {
			t.Fatal(err)
		}
		return p
	}
	sum := sha256.Sum256([]byte("hello"))
	d := hex.EncodeToString(sum[:])

	p := write("hello")
	if _, err := s.Adopt(context.Background(), p, strings.Repeat("0", 64)); !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("wrong digest: %v", err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Errorf("a refused file must stay: %v", err)
	}
	before, _ := os.Stat(p)
	b, err := s.Adopt(context.Background(), p, d)
	if err != nil || b.SHA256 != d || b.Size != 5 {
		t.Fatalf("adopt: %+v %v", b, err)
	}
	if _, err := os.Stat(p); err == nil {
		t.Error("the adopted file is still there")
	}
	f, _, err := s.Open(d)
	if err != nil {
		t.Fatal(err)
	}
	after, _ := f.Stat()
	f.Close()
	if !os.SameFile(before, after) {
		t.Error("the blob is a copy, not the adopted file")
	}
	if _, err := s.Adopt(context.Background(), write("hello"), d); err != nil {
		t.Errorf("adopting a stored blob: %v", err)
	}
}
