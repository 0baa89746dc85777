package build

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestStaticHandler(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"index.html":         "<h1>home</h1>",
		"404.html":           "<h1>lost</h1>",
		"app.js":             "console.log(1)",
		"docs/index.html":    "<h1>docs</h1>",
		"empty/readme.txt":   "x",
		".env":               "SECRET=1",
		".profile.d/a.sh":    "x",
		"sub/.hidden/x.html": "x",
	})
	outside := filepath.Join(t.TempDir(), "secret.txt")
	os.WriteFile(outside, []byte("secret"), 0o644)
	if err := os.Symlink(outside, filepath.Join(root, "escape.txt")); err != nil {
		t.Fatal(err)
	}
	h, err := StaticHandler(root)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()

	for _, tc := range []struct {
		path, want string
		code       int
		cache      string
	}{
		{"/", "home", 200, "no-cache"},
		{"/app.js", "console.log", 200, "public, max-age=3600"},
		{"/docs/", "docs", 200, "no-cache"},
		{"/empty/", "lost", 404, "no-cache"},  // no listing
		{"/.env", "lost", 404, "no-cache"},    // dotfiles hidden
		{"/.profile.d/a.sh", "lost", 404, ""}, // dot-directories too
		{"/sub/.hidden/x.html", "lost", 404, ""},
		{"/escape.txt", "lost", 404, ""}, // a symlink out of the root
		{"/../../etc/passwd", "lost", 404, ""},
		{"/nope", "lost", 404, ""},
	} {
		code, hdr, body := get(t, srv.URL+tc.path)
		if code != tc.code || !strings.Contains(body, tc.want) || strings.Contains(body, "secret") {
			t.Errorf("GET %s: %d %q, want %d with %q", tc.path, code, body, tc.code, tc.want)
		}
		if tc.cache != "" && hdr.Get("Cache-Control") != tc.cache {
			t.Errorf("GET %s: Cache-Control %q, want %q", tc.path, hdr.Get("Cache-Control"), tc.cache)
		}
	}
	// A directory without the slash is redirected, not listed.
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(srv.URL + "/docs")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "docs/" {
		t.Errorf("GET /docs: %s %q", resp.Status, resp.Header.Get("Location"))
	}
	resp, err = http.Post(srv.URL+"/", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /: %s", resp.Status)
	}
}
