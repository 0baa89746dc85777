package upgrade

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/pierpaas/pier/internal/pki"
)

// Files are the executable and what an upgrade keeps beside it, in the
// same directory so that every change is a rename on one file system:
//
//	pier         the binary the supervisor (systemd) starts
//	pier.prev    the one before it, what a rollback puts back
//	pier.next    a binary being received, renamed into place once whole
//	pier.trial   the order the running binary is on probation for (trialMarker)
//	pier.failed  the last order whose binary was given up (failedMarker)
//
// The path pier never names a half-written file: a crash at any point
// leaves either binary whole there.
type Files struct{ Exe string }

func (f Files) Prev() string          { return f.Exe + ".prev" }
func (f Files) next() string          { return f.Exe + ".next" }
func (f Files) trialPath() string     { return f.Exe + ".trial" }
func (f Files) failedPath() string    { return f.Exe + ".failed" }
func (f Files) tmp(tag string) string { return f.Exe + ".tmp-" + tag }

// SelfFiles are the files of the running executable. os.Executable
// names the running binary even after a rename put another at its path;
// the " (deleted)" Linux adds then is not part of the path.
func SelfFiles() (Files, error) {
	exe, err := os.Executable()
	if err != nil {
		return Files{}, err
	}
	return Files{Exe: strings.TrimSuffix(exe, " (deleted)")}, nil
}

// SelfSHA256 is the digest of the running binary (what the kernel runs,
// whatever the path holds now).
func SelfSHA256() (string, error) { return FileSHA256("/proc/self/exe") }

// FileSHA256 is the hex SHA-256 of a file.
func FileSHA256(path string) (string, error) {
	fh, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer fh.Close()
	h := sha256.New()
	if _, err := io.Copy(h, fh); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// ErrDigest reports a received binary whose digest or size is not the
// order's.
var ErrDigest = errors.New("upgrade: binary does not match its digest")

// Receive writes r to pier.next, checking its size and digest before it
// keeps it: nothing unverified is ever made executable.
func (f Files) Receive(r io.Reader, digest string, size int64) error {
	tmp := f.tmp("recv")
	fh, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(fh, h), io.LimitReader(r, size+1))
	if err == nil {
		err = fh.Sync()
	}
	if cerr := fh.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); n != size || got != digest {
		return fmt.Errorf("%w: got %d bytes with sha256 %s, want %d bytes with %s", ErrDigest, n, short(got), size, short(digest))
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	return os.Rename(tmp, f.next())
}

// ReceivePrev makes pier.next the previous binary when its digest is
// digest: a rollback needs nothing from the network.
func (f Files) ReceivePrev(digest string) (bool, error) {
	got, err := FileSHA256(f.Prev())
	if errors.Is(err, os.ErrNotExist) || (err == nil && got != digest) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, f.replace(f.Prev(), f.next())
}

// Swap puts pier.next in place of pier and keeps pier as pier.prev.
func (f Files) Swap() error {
	if err := f.replace(f.Exe, f.Prev()); err != nil {
		return err
	}
	return os.Rename(f.next(), f.Exe)
}

// Revert puts pier.prev back in place of pier, keeping pier.prev.
func (f Files) Revert() error { return f.replace(f.Prev(), f.Exe) }

// replace makes dst a new name of src's file, atomically: a link under a
// temporary name renamed over dst.
func (f Files) replace(src, dst string) error {
	tmp := f.tmp("link")
	os.Remove(tmp)
	if err := os.Link(src, tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, dst); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// trialMarker is pier.trial: the running binary (pid) is on probation
// for an order until deadline, when its guard gives up on it.
type trialMarker struct {
	Order    string    `json:"order"`
	PID      int       `json:"pid"`
	Deadline time.Time `json:"deadline"`
}

// failedMarker is pier.failed: the last order given up, and why, so the
// old binary, started again, does not obey the same order again.
type failedMarker struct {
	Order  string `json:"order"`
	Reason string `json:"reason"`
}

func (f Files) writeTrial(m trialMarker) error { return writeJSON(f.trialPath(), m) }
func (f Files) readTrial() (*trialMarker, error) {
	var m trialMarker
	return readJSON(f.trialPath(), &m)
}
func (f Files) removeTrial() error {
	if err := os.Remove(f.trialPath()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
func (f Files) writeFailed(m failedMarker) error { return writeJSON(f.failedPath(), m) }
func (f Files) readFailed() (*failedMarker, error) {
	var m failedMarker
	return readJSON(f.failedPath(), &m)
}

func writeJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return pki.WriteFile(path, b)
}

// readJSON reads a marker; a missing one is (nil, nil).
func readJSON[T any](path string, v *T) (*T, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return nil, fmt.Errorf("upgrade: %s: %w", path, err)
	}
	return v, nil
}
