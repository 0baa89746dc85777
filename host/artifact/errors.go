package artifact

import (
	"errors"
	"fmt"
)

var (
	// ErrUnsafe marks an archive entry that would escape the destination or
	// create something a slug must not contain. It arrives wrapped in an
	// *EntryError naming the entry.
	ErrUnsafe = errors.New("artifact: unsafe archive entry")
	// ErrLimit marks an archive or download over one of its size or count
	// bounds.
	ErrLimit = errors.New("artifact: over limit")
	// ErrDigestMismatch means the downloaded bytes are not the artifact the
	// caller asked for; nothing is cached.
	ErrDigestMismatch = errors.New("artifact: digest mismatch")
	// ErrBadDigest means a digest string is not 64 lowercase hex digits.
	ErrBadDigest = errors.New("artifact: invalid sha256 digest")
	// ErrUnsupportedURI means a URI is not file:// or http(s)://.
	ErrUnsupportedURI = errors.New("artifact: unsupported URI")
)

// EntryError says which archive entry was refused and why. Err is ErrUnsafe
// or ErrLimit, so callers test with errors.Is and log the whole message.
type EntryError struct {
	Name   string // the entry's name as it appears in the archive
	Reason string
	Err    error
}

func (e *EntryError) Error() string {
	return fmt.Sprintf("%v: %q: %s", e.Err, e.Name, e.Reason)
}

func (e *EntryError) Unwrap() error { return e.Err }

func unsafeEntry(name, reason string) error {
	return &EntryError{Name: name, Reason: reason, Err: ErrUnsafe}
}

func overLimit(name, format string, args ...any) error {
	return &EntryError{Name: name, Reason: fmt.Sprintf(format, args...), Err: ErrLimit}
}

// StatusError is a non-200 answer from an HTTP artifact source. The agent
// can tell a missing artifact (404: report the job rejected) from a
// struggling blobstore (5xx: retry with backoff).
type StatusError struct {
	URI  string // without query or credentials, which may hold signatures
	Code int
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("artifact: fetch %s: HTTP status %d", e.URI, e.Code)
}
