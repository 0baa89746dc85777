package tarball

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestHumanSize(t *testing.T) {
	for _, tc := range []struct {
		n    int64
		want string
	}{
		{0, "0 B"}, {1023, "1023 B"}, {1024, "1.0 KiB"}, {1536, "1.5 KiB"},
		{1<<20 - 1, "1.0 MiB"}, {1258291, "1.2 MiB"}, {3565158, "3.4 MiB"},
		{5 << 30, "5.0 GiB"}, {1 << 62, "4.0 EiB"},
	} {
		if got := HumanSize(tc.n); got != tc.want {
			t.Errorf("HumanSize(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
}

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestProgressThrottlesAndFinishes(t *testing.T) {
	var out bytes.Buffer
	clk := &fakeClock{t: time.Unix(1000, 0)}
	p := NewProgress(&out, 3565158, "uploading")
	p.now = clk.now

	p.Write(make([]byte, 1258291)) // first count: drawn at once
	if got := out.String(); got != "\ruploading 1.2 MiB / 3.4 MiB (35%)" {
		t.Fatalf("first draw %q", got)
	}
	out.Reset()
	clk.t = clk.t.Add(50 * time.Millisecond)
	p.Write(make([]byte, 1000))
	if out.Len() != 0 {
		t.Fatalf("redrew after 50ms: %q", out.String())
	}
	clk.t = clk.t.Add(60 * time.Millisecond)
	p.Write(nil)
	if !strings.HasPrefix(out.String(), "\ruploading 1.2 MiB") {
		t.Fatalf("no redraw after 110ms: %q", out.String())
	}
	out.Reset()
	p.Set(3565158) // within 100ms of the last draw: not drawn yet
	if out.Len() != 0 {
		t.Fatalf("Set redrew too soon: %q", out.String())
	}
	p.Done()
	if got := out.String(); got != "\ruploading 3.4 MiB / 3.4 MiB (100%)\n" {
		t.Fatalf("Done drew %q", got)
	}
	out.Reset()
	p.Done()
	clk.t = clk.t.Add(time.Second)
	if n, err := p.Write([]byte("x")); n != 1 || err != nil || out.Len() != 0 {
		t.Fatalf("after Done: Write = %d, %v, drew %q", n, err, out.String())
	}
}

func TestProgressBlanksLeftovers(t *testing.T) {
	var out bytes.Buffer
	clk := &fakeClock{t: time.Unix(1000, 0)}
	p := NewProgress(&out, 0, "packing")
	p.now = clk.now
	p.Set(5 << 20) // "packing 5.0 MiB"
	p.Set(10)      // not drawn: too soon
	out.Reset()
	p.Done() // "packing 10 B" is shorter and must cover the old text
	if got := out.String(); got != "\rpacking 10 B   \n" {
		t.Fatalf("Done drew %q", got)
	}
}

func TestProgressOverTotal(t *testing.T) {
	var out bytes.Buffer
	p := NewProgress(&out, 10, "x")
	p.Set(20)
	if !strings.Contains(out.String(), "(100%)") {
		t.Fatalf("drew %q; want the percentage capped at 100", out.String())
	}
}

func TestProgressConcurrent(t *testing.T) {
	var out bytes.Buffer
	p := NewProgress(&out, 1<<20, "up")
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 1024 {
				p.Write(make([]byte, 128))
			}
		}()
	}
	wg.Wait()
	p.Done()
	if !strings.HasSuffix(out.String(), "up 1.0 MiB / 1.0 MiB (100%)\n") {
		t.Fatalf("final line %q", out.String()[max(0, out.Len()-60):])
	}
}
