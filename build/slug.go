package build

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"

	"github.com/pierpaas/pier/internal/tarball"
)

// PackSlug writes dir as a slug to w: a gzipped tar whose names are
// relative to dir, which the host unpacks and mounts at /app (.git is
// left out). It returns the archive's sha256, hex, which names the slug,
// and its size in bytes. Entries the host would refuse (absolute
// symlinks, sockets) are left out and logged.
func PackSlug(ctx context.Context, dir string, w io.Writer) (string, int64, error) {
	return packSlug(ctx, dir, w, func(msg string) { slog.Warn("slug: "+msg, "dir", dir) })
}

func packSlug(ctx context.Context, dir string, w io.Writer, warn func(string)) (string, int64, error) {
	h := sha256.New()
	st, err := tarball.Pack(ctx, dir, io.MultiWriter(w, h), tarball.Options{Warn: warn})
	if err != nil {
		return "", 0, fmt.Errorf("build: pack %s: %w", dir, err)
	}
	return hex.EncodeToString(h.Sum(nil)), st.Written, nil
}
