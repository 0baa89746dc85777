package blobstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
)

// Adopt stores the file at path as a blob whose digest must be want, and
// consumes the file: when it is on the store's file system its name is
// linked into place instead of its bytes being copied (the registry's
// finished uploads), otherwise it is copied as Put would. On failure the
// file is left where it was.
func (s *Store) Adopt(ctx context.Context, path, want string) (Blob, error) {
	if !ValidDigest(want) {
		return Blob{}, ErrBadDigest
	}
	f, err := os.Open(path)
	if err != nil {
		return Blob{}, fmt.Errorf("blobstore: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Blob{}, fmt.Errorf("blobstore: %w", err)
	}
	if s.maxSize > 0 && fi.Size() > s.maxSize {
		return Blob{}, ErrTooLarge
	}
	h := sha256.New()
	if _, err := io.Copy(h, ctxReader{ctx, f}); err != nil {
		return Blob{}, fmt.Errorf("blobstore: reading %s: %w", path, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return Blob{}, fmt.Errorf("%w: got %s, want %s", ErrDigestMismatch, got, want)
	}
	// As in put: durable before it has its name, and read-only.
	if err := f.Sync(); err != nil {
		return Blob{}, fmt.Errorf("blobstore: %w", err)
	}
	if err := os.Chmod(path, 0o440); err != nil {
		return Blob{}, fmt.Errorf("blobstore: %w", err)
	}
	_, err = s.commit(path, want)
	if errors.Is(err, syscall.EXDEV) {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return Blob{}, fmt.Errorf("blobstore: %w", err)
		}
		b, _, err := s.put(ctx, f, want)
		if err == nil {
			os.Remove(path)
		}
		return b, err
	}
	if err != nil {
		return Blob{}, err
	}
	os.Remove(path) // a second name of the blob now, if it was linked
	return Blob{SHA256: want, Size: fi.Size()}, nil
}
