package build

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"github.com/pierpaas/pier/host/artifact"
)

func TestPackSlugRoundTrip(t *testing.T) {
	app := t.TempDir()
	writeFiles(t, app, map[string]string{
		"Procfile":           "web: bin/web\n",
		"bin/web":            "#!/bin/sh\necho hi\n",
		".profile.d/path.sh": "export PATH=$HOME/bin:$PATH\n",
		".git/HEAD":          "ref: refs/heads/main\n",
	})
	if err := os.Symlink("bin/web", filepath.Join(app, "web")); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	sum, size, err := PackSlug(context.Background(), app, &buf)
	if err != nil {
		t.Fatal(err)
	}
	if size != int64(buf.Len()) {
		t.Errorf("size %d, wrote %d", size, buf.Len())
	}
	if h := sha256.Sum256(buf.Bytes()); hex.EncodeToString(h[:]) != sum {
		t.Errorf("sha256 %s does not name the bytes written", sum)
	}
	// Content-addressed: the same tree packs to the same bytes.
	var again bytes.Buffer
	if sum2, _, err := PackSlug(context.Background(), app, &again); err != nil || sum2 != sum {
		t.Errorf("second pack: %s %v, want %s", sum2, err, sum)
	}

	dest := filepath.Join(t.TempDir(), "slug")
	if err := artifact.Extract(bytes.NewReader(buf.Bytes()), dest, artifact.Limits{}); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dest, "bin", "web")); err != nil || fi.Mode()&0o111 == 0 {
		t.Errorf("bin/web: %v %v", fi, err)
	}
	if b, _ := os.ReadFile(filepath.Join(dest, ".profile.d", "path.sh")); len(b) == 0 {
		t.Error(".profile.d/path.sh missing")
	}
	if target, err := os.Readlink(filepath.Join(dest, "web")); err != nil || target != "bin/web" {
		t.Errorf("symlink: %q %v", target, err)
	}
	if _, err := os.Stat(filepath.Join(dest, ".git")); !os.IsNotExist(err) {
		t.Errorf(".git was packed: %v", err)
	}
}
