package backup

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// Writer streams a backup: NewWriter writes the marker, Add each part
// as it comes, Close the manifest. Nothing but the manifest is held in
// memory.
type Writer struct {
	tw   *tar.Writer
	m    Manifest
	seen map[string]bool
	now  time.Time
}

// NewWriter starts a backup on w. m's Format and Entries are filled in
// by the Writer; its versions, server and domain are the caller's.
func NewWriter(w io.Writer, m Manifest) (*Writer, error) {
	if m.CreatedAt.IsZero() {
		m.CreatedAt = time.Now().UTC()
	}
	m.Format, m.Entries = Format, nil
	bw := &Writer{tw: tar.NewWriter(w), m: m, seen: map[string]bool{}, now: m.CreatedAt}
	if err := bw.entry(MarkerEntry, []byte(marker)); err != nil {
		return nil, err
	}
	return bw, nil
}

// Add writes the part name of size bytes read from r, hashing it on
// the way. r must hold at least size bytes; more are not read.
func (w *Writer) Add(name string, size int64, r io.Reader) error {
	_, err := w.add(name, size, r)
	return err
}

// AddBlob adds a blob, which must hash to its digest: a blob damaged on
// the server's disk stops the backup rather than making one that a
// restore would refuse.
func (w *Writer) AddBlob(digest string, size int64, r io.Reader) error {
	name := BlobEntryPrefix + digest
	sum, err := w.add(name, size, r)
	if err != nil {
		return err
	}
	if sum != digest {
		return fmt.Errorf("backup: blob %s on this server hashes to %s: it is damaged", digest, sum)
	}
	return nil
}

func (w *Writer) add(name string, size int64, r io.Reader) (string, error) {
	if !knownEntry(name) {
		return "", fmt.Errorf("backup: no part may be called %q", name)
	}
	if w.seen[name] {
		return "", fmt.Errorf("backup: %s added twice", name)
	}
	w.seen[name] = true
	if err := w.tw.WriteHeader(w.header(name, size)); err != nil {
		return "", fmt.Errorf("backup: %s: %w", name, err)
	}
	h := sha256.New()
	n, err := io.CopyN(io.MultiWriter(w.tw, h), r, size)
	if err == io.EOF {
		return "", fmt.Errorf("backup: %s: %d bytes of %d", name, n, size)
	}
	if err != nil {
		return "", fmt.Errorf("backup: %s: %w", name, err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	w.m.Entries = append(w.m.Entries, Entry{Name: name, Size: size, SHA256: sum})
	return sum, nil
}

// Close writes the manifest and its checksum and ends the archive. It
// does not close the underlying writer.
func (w *Writer) Close() error {
	b, err := json.MarshalIndent(w.m, "", "  ")
	if err != nil {
		return err
	}
	sum := sha256.Sum256(b)
	if err := w.entry(ManifestEntry, b); err != nil {
		return err
	}
	if err := w.entry(ManifestSumEntry, []byte(hex.EncodeToString(sum[:])+"\n")); err != nil {
		return err
	}
	return w.tw.Close()
}

// Manifest is what has been written so far.
func (w *Writer) Manifest() Manifest { return w.m }

func (w *Writer) entry(name string, b []byte) error {
	if err := w.tw.WriteHeader(w.header(name, int64(len(b)))); err != nil {
		return fmt.Errorf("backup: %s: %w", name, err)
	}
	if _, err := w.tw.Write(b); err != nil {
		return fmt.Errorf("backup: %s: %w", name, err)
	}
	return nil
}

// header: no owners, one time, mode 0600: the parts are secrets.
func (w *Writer) header(name string, size int64) *tar.Header {
	return &tar.Header{Typeflag: tar.TypeReg, Name: name, Size: size, Mode: 0o600, ModTime: w.now.Truncate(time.Second)}
}
