package backup

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// maxManifest bounds the manifest read into memory: about a hundred
// bytes an entry, so room for a few hundred thousand blobs.
const maxManifest = 64 << 20

// corrupt wraps ErrCorrupt with what is wrong.
func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

// Verify reads a whole backup from r and returns its manifest if every
// part is there, known, whole and matches its checksum, and the
// manifest matches its own; otherwise an ErrCorrupt or ErrUnsupported
// error that says what is wrong. It reads r to its end, so that
// Verify(io.TeeReader(src, file)) copies the whole stream while
// checking it.
func Verify(r io.Reader) (*Manifest, error) {
	got := map[string]Entry{}
	var order []string
	var manifest []byte
	var manifestSum string
	err := walk(r, func(i int, hdr *tar.Header, body io.Reader) error {
		switch {
		case i == 0:
			b, err := io.ReadAll(io.LimitReader(body, int64(len(marker))+1))
			if err != nil {
				return err
			}
			if hdr.Name != MarkerEntry || string(b) != marker {
				return corrupt("not a pier backup (no %s entry first)", MarkerEntry)
			}
		case manifestSum != "":
			return corrupt("%s after the manifest's checksum", hdr.Name)
		case hdr.Name == ManifestEntry:
			if manifest != nil {
				return corrupt("two manifests")
			}
			if hdr.Size > maxManifest {
				return corrupt("a manifest of %d bytes", hdr.Size)
			}
			b, err := io.ReadAll(body)
			if err != nil {
				return err
			}
			manifest = b
		case hdr.Name == ManifestSumEntry:
			if manifest == nil {
				return corrupt("the manifest's checksum comes before the manifest")
			}
			b, err := io.ReadAll(io.LimitReader(body, 200))
			if err != nil {
				return err
			}
			manifestSum = strings.TrimSpace(string(b))
			if manifestSum == "" {
				manifestSum = "(empty)"
			}
		case manifest != nil:
			return corrupt("%s after the manifest", hdr.Name)
		default:
			if !knownEntry(hdr.Name) {
				return corrupt("unknown part %q", hdr.Name)
			}
			if _, dup := got[hdr.Name]; dup {
				return corrupt("%s twice", hdr.Name)
			}
			h := sha256.New()
			n, err := io.Copy(h, body)
			if err != nil {
				return err
			}
			got[hdr.Name] = Entry{Name: hdr.Name, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}
			order = append(order, hdr.Name)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if manifest == nil {
		return nil, corrupt("no manifest: the file is cut short")
	}
	if manifestSum == "" {
		return nil, corrupt("no checksum of the manifest: the file is cut short")
	}
	if sum := sha256.Sum256(manifest); hex.EncodeToString(sum[:]) != manifestSum {
		return nil, corrupt("the manifest does not match its checksum")
	}
	var m Manifest
	if err := json.Unmarshal(manifest, &m); err != nil {
		return nil, corrupt("manifest: %v", err)
	}
	if m.Format != Format {
		return nil, fmt.Errorf("%w: format %d (this pier reads %d)", ErrUnsupported, m.Format, Format)
	}
	if len(m.Entries) != len(got) {
		return nil, corrupt("the manifest lists %d parts, the file holds %d", len(m.Entries), len(got))
	}
	for _, want := range m.Entries {
		e, ok := got[want.Name]
		switch {
		case !ok:
			return nil, corrupt("%s is missing", want.Name)
		case e.Size != want.Size:
			return nil, corrupt("%s has %d bytes, the manifest says %d", want.Name, e.Size, want.Size)
		case e.SHA256 != want.SHA256:
			return nil, corrupt("%s does not match its checksum", want.Name)
		}
		if d := BlobDigest(want.Name); d != "" && d != e.SHA256 {
			return nil, corrupt("blob %s hashes to %s", d, e.SHA256)
		}
	}
	if !m.Has(SnapshotEntry) {
		return nil, corrupt("no etcd snapshot")
	}
	return &m, nil
}

// Extract reads the backup m came from (by Verify) again and calls fn
// with each part's content, in the file's order. A part that no longer
// matches m, or any other difference, stops it with ErrCorrupt after
// fn has seen it: fn must write where a failure can be undone.
func Extract(r io.Reader, m *Manifest, fn func(e Entry, body io.Reader) error) error {
	want := map[string]Entry{}
	for _, e := range m.Entries {
		want[e.Name] = e
	}
	return walk(r, func(i int, hdr *tar.Header, body io.Reader) error {
		if i == 0 || hdr.Name == ManifestEntry || hdr.Name == ManifestSumEntry {
			return nil
		}
		e, ok := want[hdr.Name]
		if !ok || hdr.Size != e.Size {
			return corrupt("%s changed since it was verified", hdr.Name)
		}
		delete(want, hdr.Name)
		h := sha256.New()
		if err := fn(e, io.TeeReader(body, h)); err != nil {
			return err
		}
		if _, err := io.Copy(h, body); err != nil {
			return err
		}
		if hex.EncodeToString(h.Sum(nil)) != e.SHA256 {
			return corrupt("%s changed since it was verified", hdr.Name)
		}
		return nil
	})
}

// walk calls fn for each entry of the tar stream r and then reads r to
// its end. Read errors of the archive become ErrCorrupt; fn's are
// returned as they are.
func walk(r io.Reader, fn func(i int, hdr *tar.Header, body io.Reader) error) error {
	tr := tar.NewReader(r)
	for i := 0; ; i++ {
		hdr, err := tr.Next()
		if err == io.EOF {
			if i == 0 {
				return corrupt("empty file")
			}
			break
		}
		if err != nil {
			return tarError(err)
		}
		if hdr.Typeflag != tar.TypeReg {
			return corrupt("%s is not a regular file", hdr.Name)
		}
		if err := fn(i, hdr, &bodyReader{tr}); err != nil {
			var be bodyErr
			if errors.As(err, &be) {
				return tarError(be.err)
			}
			return err
		}
	}
	// Whatever follows the archive's end is read (and copied by a tee),
	// but only zeros, as tar pads, belong there.
	rest := make([]byte, 32<<10)
	for {
		n, err := r.Read(rest)
		if !bytes.Equal(rest[:n], make([]byte, n)) {
			return corrupt("data after the end of the archive")
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// bodyReader marks errors of the archive itself, so that walk can tell
// a damaged file from a failing fn.
type bodyReader struct{ tr *tar.Reader }

type bodyErr struct{ err error }

func (e bodyErr) Error() string { return e.err.Error() }
func (e bodyErr) Unwrap() error { return e.err }

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.tr.Read(p)
	if err != nil && err != io.EOF {
		err = bodyErr{err}
	}
	return n, err
}

func tarError(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return corrupt("the file is cut short")
	}
	return corrupt("%v", err)
}
