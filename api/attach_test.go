package api

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestFrames(t *testing.T) {
	var b bytes.Buffer
	WriteFrame(&b, FrameStdout, []byte("hello"))
	WriteFrame(&b, FrameCloseStdin, nil)
	WriteFrame(&b, FrameResize, ResizePayload(40, 100))
	if !bytes.Equal(b.Bytes()[:10], []byte{1, 0, 0, 0, 5, 'h', 'e', 'l', 'l', 'o'}) {
		t.Fatalf("encoding % x", b.Bytes())
	}
	for _, want := range []struct {
		typ byte
		p   string
	}{{FrameStdout, "hello"}, {FrameCloseStdin, ""}, {FrameResize, "\x00\x28\x00\x64"}} {
		typ, p, err := ReadFrame(&b)
		if err != nil || typ != want.typ || string(p) != want.p {
			t.Fatalf("ReadFrame = %d %q %v, want %d %q", typ, p, err, want.typ, want.p)
		}
	}
	if _, _, err := ReadFrame(&b); err != io.EOF {
		t.Fatalf("at the end: %v", err)
	}
	if rows, cols, ok := ParseResize(ResizePayload(40, 100)); !ok || rows != 40 || cols != 100 {
		t.Fatalf("ParseResize = %d %d %v", rows, cols, ok)
	}
	if _, _, ok := ParseResize([]byte{1}); ok {
		t.Fatal("a short resize parsed")
	}

	// Cut inside a frame; a length over the limit.
	if _, _, err := ReadFrame(bytes.NewReader([]byte{1, 0, 0, 0, 5, 'h'})); err != io.ErrUnexpectedEOF {
		t.Fatalf("truncated: %v", err)
	}
	if _, _, err := ReadFrame(bytes.NewReader([]byte{1, 0xff, 0xff, 0xff, 0xff})); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("too large: %v", err)
	}
	if err := WriteFrame(io.Discard, FrameStdin, make([]byte, MaxFramePayload+1)); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("writing too large: %v", err)
	}
}
