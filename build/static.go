package build

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path"
	"strings"
	"time"
)

// StaticHandler serves the files under root: index.html for a directory,
// 404 for a directory without one (no listings), for dotfiles and
// dot-directories (.profile.d, .env), and for anything a symlink would
// reach outside root. HTML is revalidated on every request, so a deploy
// shows at once; other files may be cached for an hour. A 404.html at the
// root is the not-found page.
func StaticHandler(root string) (http.Handler, error) {
	r, err := os.OpenRoot(root)
	if err != nil {
		return nil, fmt.Errorf("serve-static: %w", err)
	}
	// The os.Root stays open for the life of the process.
	fsys := r.FS()
	return &staticHandler{fsys: fsys, files: http.FileServerFS(fsys)}, nil
}

type staticHandler struct {
	fsys  fs.FS
	files http.Handler
}

func (h *staticHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "405 method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("X-Content-Type-Options", "nosniff")
	name := strings.TrimPrefix(path.Clean("/"+r.URL.Path), "/")
	if name == "" {
		name = "."
	}
	for _, part := range strings.Split(name, "/") {
		if strings.HasPrefix(part, ".") && part != "." {
			h.notFound(w, r)
			return
		}
	}
	fi, err := fs.Stat(h.fsys, name)
	if err != nil {
		h.notFound(w, r)
		return
	}
	served := name
	if fi.IsDir() {
		served = path.Join(name, "index.html")
		if _, err := fs.Stat(h.fsys, served); err != nil {
			h.notFound(w, r)
			return
		}
	}
	setCacheControl(w, served)
	h.files.ServeHTTP(w, r)
}

func setCacheControl(w http.ResponseWriter, name string) {
	if ext := path.Ext(name); ext == ".html" || ext == ".htm" {
		w.Header().Set("Cache-Control", "no-cache")
	} else {
		w.Header().Set("Cache-Control", "public, max-age=3600")
	}
}

func (h *staticHandler) notFound(w http.ResponseWriter, r *http.Request) {
	if b, err := fs.ReadFile(h.fsys, "404.html"); err == nil {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		w.WriteHeader(http.StatusNotFound)
		if r.Method != http.MethodHead {
			w.Write(b)
		}
		return
	}
	http.NotFound(w, r)
}

// ServeStatic serves root on addr (":5000") until ctx is done, then
// drains the open requests for a few seconds.
func ServeStatic(ctx context.Context, root, addr string) error {
	h, err := StaticHandler(root)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("serve-static: %w", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	slog.Info("serving static files", "root", root, "addr", ln.Addr().String())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return fmt.Errorf("serve-static: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("serve-static: %w", err)
	}
	return nil
}
