package cli_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestPostgresCredentialRotation is issue 15's rotation under load:
// requests writing to the database through the router while pier
// pg:credentials:rotate runs; not one fails, every row written is there,
// the old password no longer logs in and the new one does.
func TestPostgresCredentialRotation(t *testing.T) {
	appDir := notesApp(t)
	p := startUp(t, filepath.Join(t.TempDir(), "data"), freeUpPorts(t))
	u := cliUser{t, p}
	u.must("create", "notes")
	u.must("deploy", "--no-build", "-a", "notes", appDir)
	u.must("scale", "-a", "notes", "web=2")
	u.must("resources:add", "postgres", "-a", "notes", "--name", "db", "--size", "256M")
	waitUntil(t, "the app to store a row", 60*time.Second, func() bool {
		code, _, err := get(p, "notes", "/add?note=first")
		return err == nil && code == 200
	})
	// The first new job serves before the deployment of the release with
	// DATABASE_URL has replaced the second.
	var oldURL string
	waitUntil(t, "the release with DATABASE_URL to be deployed", 60*time.Second, func() bool {
		out, _, code := u.run("config:get", "DATABASE_URL", "-a", "notes")
		oldURL = strings.TrimSpace(out)
		return code == 0 && oldURL != ""
	})

	u.fails("not attached", "pg:credentials:rotate", "db", "-a", "nope")

	var ok, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				code, body, err := get(p, "notes", "/add?note=x")
				if err != nil || code != 200 || !strings.HasPrefix(body, "stored ") {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprintf("%d %q %v", code, body, err))
				} else {
					ok.Add(1)
				}
			}
		})
	}
	began := time.Now()
	out := u.must("pg:credentials:rotate", "db")
	close(stop)
	wg.Wait()
	t.Logf("rotation took %s; %d writes, %d failed: %s", time.Since(began).Round(time.Millisecond), ok.Load(), failed.Load(), out)
	if failed.Load() != 0 || ok.Load() == 0 {
		t.Fatalf("requests during the rotation: %d ok, %d failed (first: %v)", ok.Load(), failed.Load(), firstErr.Load())
	}
	if !strings.Contains(out, "Rotated notes's credentials") {
		t.Fatalf("rotate said %q", out)
	}
	newURL := strings.TrimSpace(u.must("config:get", "DATABASE_URL", "-a", "notes"))
	if newURL == oldURL {
		t.Fatal("DATABASE_URL did not change")
	}
	// Every write that answered is there.
	_, body, err := get(p, "notes", "/")
	if n := int64(strings.Count(body, "\n")); err != nil || n != ok.Load()+1 {
		t.Fatalf("%d rows after the rotation, want %d (%v)", n, ok.Load()+1, err)
	}

	login := func(url string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, u.viaRouter("db", url)+"?sslmode=disable")
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		var user string
		return conn.QueryRow(ctx, "SELECT current_user").Scan(&user)
	}
	if err := login(oldURL); err == nil {
		t.Fatal("the old DATABASE_URL still logs in")
	} else {
		t.Logf("the old DATABASE_URL: %v", err)
	}
	if err := login(newURL); err != nil {
		t.Fatalf("the new DATABASE_URL: %v", err)
	}

	// A second rotation goes back to the first login name, with a new
	// password; pg:psql follows.
	u.must("pg:credentials:rotate", "db", "-a", "notes")
	if err := login(newURL); err == nil {
		t.Fatal("the second URL still logs in after another rotation")
	}
	if out := u.must("pg:psql", "db", "-a", "notes", "-c", "SELECT current_user"); !strings.Contains(out, "notes") {
		t.Fatalf("pg:psql after the rotations: %q", out)
	}
	// Detaching drops the role and both its logins.
	u.must("resources:detach", "db", "-a", "notes")
	if out := u.must("pg:psql", "db", "-c", "SELECT count(*) AS n FROM pg_roles WHERE rolname LIKE 'notes%'"); !strings.Contains(out, " 0\n") {
		t.Fatalf("roles left after detach: %q", out)
	}
}
