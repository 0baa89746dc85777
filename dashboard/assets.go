package dashboard

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
)

// The page, its script and its styles are part of the binary: a server
// serves the dashboard with no files beside it and fetches nothing from
// anywhere at run time.
//
//go:embed assets
var assetFS embed.FS

// asset is one file, kept gzipped too: every browser takes gzip, and
// compressing once at start costs less than per request.
type asset struct {
	name, ctype, etag string
	plain, gz         []byte
}

type assets struct{ files map[string]*asset }

func loadAssets() *assets {
	a := &assets{files: map[string]*asset{}}
	entries, err := fs.ReadDir(assetFS, "assets")
	if err != nil {
		panic(err) // embedded: cannot fail but for a broken build
	}
	for _, e := range entries {
		b, err := assetFS.ReadFile("assets/" + e.Name())
		if err != nil {
			panic(err)
		}
		var gz bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
		zw.Write(b)
		zw.Close()
		sum := sha256.Sum256(b)
		a.files[e.Name()] = &asset{
			name: e.Name(), ctype: mime.TypeByExtension(path.Ext(e.Name())),
			etag: `"` + hex.EncodeToString(sum[:8]) + `"`, plain: b, gz: gz.Bytes(),
		}
	}
	return a
}

// securityHeaders keep the page to its own origin: no inline or foreign
// script, no framing (clickjacking the scale buttons), no referrer to
// other sites (a one-time sign-in URL must not leak through one; within
// the origin it is kept, so that our own posts carry an Origin that
// sign-in can check).
func securityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Frame-Options", "DENY")
}

func (a *assets) serveIndex(w http.ResponseWriter, r *http.Request) {
	a.serve(w, r, "index.html")
}

func (a *assets) serveAsset(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	if name == "index.html" {
		http.Redirect(w, r, "/", http.StatusMovedPermanently)
		return
	}
	a.serve(w, r, name)
}

func (a *assets) serve(w http.ResponseWriter, r *http.Request, name string) {
	f, ok := a.files[name]
	if !ok {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	securityHeaders(h)
	h.Set("Content-Type", f.ctype)
	// Revalidated each time (a 304 is cheap), so an upgraded server's
	// page is never mixed with an old cached script.
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", f.etag)
	h.Add("Vary", "Accept-Encoding")
	body := f.plain
	if acceptsGzip(r) {
		h.Set("Content-Encoding", "gzip")
		body = f.gz
	}
	// ServeContent answers If-None-Match with 304.
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
}

func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		if strings.TrimSpace(strings.SplitN(part, ";", 2)[0]) == "gzip" {
			return true
		}
	}
	return false
}

// AssetsGzipSize is the bytes of the page, script and styles as sent
// gzipped: what a first visit downloads before any API answer.
func AssetsGzipSize() int {
	n := 0
	for _, f := range loadAssets().files {
		n += len(f.gz)
	}
	return n
}
