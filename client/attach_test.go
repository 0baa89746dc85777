package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/client"
)

// echoAttach is an agent's attach endpoint in miniature: input comes back
// as stdout, a resize as a line saying so, the end of input as "eof" on
// stderr and then exit code 7. Job "broken" hangs up mid-way; job "ended"
// is refused.
func echoAttach(t *testing.T) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/jobs/ended/attach" {
			w.WriteHeader(http.StatusConflict)
			json.NewEncoder(w).Encode(api.Error{Code: api.ErrCodeConflict, Message: "job ended is not running"})
			return
		}
		if r.Header.Get("Upgrade") != api.AttachUpgrade || r.ProtoMajor != 1 {
			t.Errorf("attach request %s %v", r.Proto, r.Header)
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		io.WriteString(conn, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: pier-attach\r\n\r\n")
		api.WriteFrame(conn, api.FrameStdout, []byte("size "+r.URL.Query().Get("rows")+"x"+r.URL.Query().Get("cols")+"\n"))
		if r.URL.Path == "/v1/jobs/broken/attach" {
			return
		}
		for {
			typ, p, err := api.ReadFrame(brw)
			if err != nil {
				return
			}
			switch typ {
			case api.FrameStdin:
				api.WriteFrame(conn, api.FrameStdout, p)
			case api.FrameResize:
				rows, cols, _ := api.ParseResize(p)
				api.WriteFrame(conn, api.FrameStdout, []byte(fmt.Sprintf("resize %dx%d\n", rows, cols)))
			case api.FrameCloseStdin:
				api.WriteFrame(conn, api.FrameStderr, []byte("eof\n"))
				b, _ := json.Marshal(api.AttachExit{ExitCode: 7})
				api.WriteFrame(conn, api.FrameExit, b)
				return
			}
		}
	})
}

func TestAttach(t *testing.T) {
	hc := fakeAgent(t, echoAttach(t))
	ctx := context.Background()
	ac, err := hc.Attach(ctx, "run-1", client.AttachOptions{Rows: 24, Cols: 80})
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	big := strings.Repeat("x", 100<<10) // more than one frame
	if _, err := io.WriteString(ac, big); err != nil {
		t.Fatal(err)
	}
	if err := ac.Resize(50, 120); err != nil {
		t.Fatal(err)
	}
	if err := ac.CloseStdin(); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	ex, err := ac.Copy(&stdout, &stderr)
	if err != nil || ex.ExitCode != 7 {
		t.Fatalf("copy: %+v %v", ex, err)
	}
	if want := "size 24x80\n" + big + "resize 50x120\n"; stdout.String() != want || stderr.String() != "eof\n" {
		t.Fatalf("stdout %.60q… (%d bytes), stderr %q", stdout.String(), stdout.Len(), stderr.String())
	}

	// A connection that ends before the exit frame.
	ac, err = hc.Attach(ctx, "broken", client.AttachOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	stdout.Reset()
	if _, err := ac.Copy(&stdout, nil); !errors.Is(err, client.ErrAttachBroken) || stdout.String() != "size x\n" {
		t.Fatalf("broken: %v, stdout %q", err, stdout.String())
	}

	// Refusals are API errors.
	_, err = hc.Attach(ctx, "ended", client.AttachOptions{})
	var apiErr *api.Error
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusConflict || apiErr.Code != api.ErrCodeConflict {
		t.Fatalf("attach to an ended job: %v", err)
	}

	// The context bounds the connecting.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := hc.Attach(cctx, "run-1", client.AttachOptions{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("attach with a cancelled context: %v", err)
	}
}
