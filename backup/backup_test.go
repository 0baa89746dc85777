package backup

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
)

// part is one part a test backup holds.
type part struct {
	name string
	body []byte
}

func blobPart(body string) part {
	sum := sha256.Sum256([]byte(body))
	return part{BlobEntryPrefix + hex.EncodeToString(sum[:]), []byte(body)}
}

// sample writes a backup of a snapshot, a CA and two blobs.
func sample(t *testing.T) ([]byte, []part) {
	t.Helper()
	parts := []part{
		{SnapshotEntry, bytes.Repeat([]byte("etcd"), 3000)},
		{CACertEntry, []byte("-----BEGIN CERTIFICATE-----\n")},
		{CAKeyEntry, []byte("-----BEGIN PRIVATE KEY-----\n")},
		blobPart(strings.Repeat("slug one ", 5000)),
		blobPart("slug two"),
	}
	var buf bytes.Buffer
	w, err := NewWriter(&buf, Manifest{PierVersion: "test", EtcdVersion: "3.7.3", Server: "s1", Domain: "old.example"})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range parts {
		var err error
		if d := BlobDigest(p.name); d != "" {
			err = w.AddBlob(d, int64(len(p.body)), bytes.NewReader(p.body))
		} else {
			err = w.Add(p.name, int64(len(p.body)), bytes.NewReader(p.body))
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), parts
}

func TestRoundTrip(t *testing.T) {
	file, parts := sample(t)
	m, err := Verify(bytes.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	if m.Format != Format || m.PierVersion != "test" || m.Domain != "old.example" || len(m.Entries) != len(parts) {
		t.Fatalf("manifest %+v", m)
	}
	if n, _ := m.Blobs(); n != 2 {
		t.Fatalf("%d blobs", n)
	}
	var got []part
	err = Extract(bytes.NewReader(file), m, func(e Entry, body io.Reader) error {
		b, err := io.ReadAll(body)
		got = append(got, part{e.Name, b})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(parts) {
		t.Fatalf("extracted %d parts, want %d", len(got), len(parts))
	}
	for i := range parts {
		if got[i].name != parts[i].name || !bytes.Equal(got[i].body, parts[i].body) {
			t.Fatalf("part %d: %s (%d bytes), want %s (%d bytes)", i, got[i].name, len(got[i].body), parts[i].name, len(parts[i].body))
		}
	}
	// Verify through a tee copies the whole stream, as the CLI does.
	var copied bytes.Buffer
	if _, err := Verify(io.TeeReader(bytes.NewReader(file), &copied)); err != nil || !bytes.Equal(copied.Bytes(), file) {
		t.Fatalf("tee: %v, %d of %d bytes", err, copied.Len(), len(file))
	}
}

// TestDamagedRefused: every byte flipped in a part, a header or the
// manifest, and every cut, is refused by Verify before anything is
// handed out; Extract, which only runs after Verify, is not reached.
func TestDamagedRefused(t *testing.T) {
	file, _ := sample(t)
	check := func(what string, b []byte) {
		t.Helper()
		m, err := Verify(bytes.NewReader(b))
		if err == nil {
			t.Fatalf("%s: accepted (%+v)", what, m)
		}
		if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrUnsupported) {
			t.Fatalf("%s: %v is not ErrCorrupt", what, err)
		}
	}
	// Cuts anywhere up to the last byte of the manifest's checksum;
	// only the padding after it, which holds no data, may go.
	end := bytes.LastIndexByte(file, '\n') // the checksum's line ends the data
	for n := 0; n < end; n += 397 {
		check("cut at "+itoa(n), file[:n])
	}
	check("cut before the last byte", file[:end])
	// A flipped byte anywhere that is not padding.
	for _, off := range []int{100, 600, 5000, 12000, 20000, 40000, len(file) - 1500, len(file) - 1100} {
		b := bytes.Clone(file)
		if b[off] == 0 { // padding: tar ignores it
			continue
		}
		b[off] ^= 0x20
		check("byte "+itoa(off)+" flipped", b)
	}
	check("not a backup", []byte(strings.Repeat("hello", 1000)))
	check("empty", nil)
	check("garbage after the end", append(bytes.Clone(file), []byte("trailing")...))
}

func TestFlippedPartNamed(t *testing.T) {
	file, parts := sample(t)
	// The second blob's body sits just before the manifest; find it.
	body := parts[4].body
	i := bytes.Index(file, body)
	b := bytes.Clone(file)
	b[i] ^= 1
	_, err := Verify(bytes.NewReader(b))
	if err == nil || !strings.Contains(err.Error(), parts[4].name) {
		t.Fatalf("err %v, want one naming %s", err, parts[4].name)
	}
}

func TestWriterRefuses(t *testing.T) {
	w, err := NewWriter(io.Discard, Manifest{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Add("../etc/passwd", 1, strings.NewReader("x")); err == nil {
		t.Fatal("an unknown name was written")
	}
	if err := w.Add(SnapshotEntry, 10, strings.NewReader("short")); err == nil {
		t.Fatal("a short part was written")
	}
	sum := sha256.Sum256([]byte("other"))
	if err := w.AddBlob(hex.EncodeToString(sum[:]), 4, strings.NewReader("blob")); err == nil {
		t.Fatal("a blob that does not hash to its name was written")
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
