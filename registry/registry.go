package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pierpaas/pier/blobstore"
)

// ErrNoRepository is what Config.Repository returns for a name that is
// not a repository (no such app).
var ErrNoRepository = errors.New("registry: no such repository")

// Config is what the registry needs from the server it runs in.
type Config struct {
	// Blobs holds blob and manifest bytes; Fetch, if set, copies a blob
	// this server lacks from another server.
	Blobs *blobstore.Store
	Fetch func(ctx context.Context, hex string) error
	// KV is the store, where links, manifests and tags are recorded.
	KV clientv3.KV
	// Auth authenticates a request (an API key as the basic-auth
	// password, or a host's cluster certificate).
	Auth func(*http.Request) error
	// Repository says whether name is a repository: ErrNoRepository if
	// not.
	Repository func(ctx context.Context, name string) error
	// UploadDir holds uploads in progress.
	UploadDir string
	// Refuse, if set, may refuse a write (the disk is low): its error is
	// the message the client sees.
	Refuse func() error
	Log    *slog.Logger
}

// Handler serves the distribution API at /v2/.
func Handler(cfg Config) (http.Handler, error) {
	if cfg.Auth == nil || cfg.Blobs == nil || cfg.KV == nil || cfg.Repository == nil || cfg.UploadDir == "" {
		return nil, errors.New("registry: Config needs Auth, Blobs, KV, Repository and UploadDir")
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if err := os.MkdirAll(cfg.UploadDir, 0o750); err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	return &handler{cfg: cfg, meta: meta{cfg.KV}}, nil
}

type handler struct {
	cfg  Config
	meta meta

	mu      sync.Mutex
	uploads map[string]*uploadLock // by upload id, while requests use it
}

// The grammar of the spec's names, references and digests.
var (
	nameRE   = regexp.MustCompile(`^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$`)
	tagRE    = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)
	digestRE = regexp.MustCompile(`^[a-z0-9]+([+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$`)
)

// request is a parsed /v2/ path.
type request struct {
	name string
	kind string // "blobs", "uploads", "manifests", "tags", "referrers"
	ref  string // digest, tag, or upload id
}

// parsePath splits /v2/<name>/<kind>/<ref>; the name may hold slashes,
// so the kind is found from the end.
func parsePath(p string) (request, bool) {
	rest, ok := strings.CutPrefix(p, "/v2/")
	if !ok {
		return request{}, false
	}
	if name, ok := strings.CutSuffix(rest, "/tags/list"); ok {
		return request{name: name, kind: "tags"}, true
	}
	if i := strings.LastIndex(rest, "/blobs/uploads/"); i > 0 {
		return request{name: rest[:i], kind: "uploads", ref: rest[i+len("/blobs/uploads/"):]}, true
	}
	if i := strings.LastIndex(rest, "/blobs/uploads"); i > 0 && i+len("/blobs/uploads") == len(rest) {
		return request{name: rest[:i], kind: "uploads"}, true
	}
	for _, kind := range []string{"blobs", "manifests", "referrers"} {
		sep := "/" + kind + "/"
		if i := strings.LastIndex(rest, sep); i > 0 {
			ref := rest[i+len(sep):]
			if ref == "" || strings.Contains(ref, "/") {
				return request{}, false
			}
			return request{name: rest[:i], kind: kind, ref: ref}, true
		}
	}
	return request{}, false
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	if err := h.cfg.Auth(r); err != nil {
		writeError(w, errorf(http.StatusUnauthorized, codeUnauthorized, "authentication required: log in with user pier and an API key as the password"))
		return
	}
	if r.URL.Path == "/v2/" || r.URL.Path == "/v2" {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte("{}\n"))
		return
	}
	req, ok := parsePath(r.URL.Path)
	if !ok {
		writeError(w, errorf(http.StatusNotFound, codeUnsupported, "no such endpoint: "+r.URL.Path))
		return
	}
	if err := h.serve(w, r, req); err != nil {
		var re *regError
		if !errors.As(err, &re) {
			if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
				return
			}
			h.cfg.Log.Error("registry request failed", "method", r.Method, "path", r.URL.Path, "err", err)
			re = errorf(http.StatusInternalServerError, codeUnknown, "internal error")
		}
		writeError(w, re)
	}
}

func (h *handler) serve(w http.ResponseWriter, r *http.Request, req request) error {
	if !nameRE.MatchString(req.name) || len(req.name) > 255 {
		return errorf(http.StatusBadRequest, codeNameInvalid, "invalid repository name "+req.name)
	}
	if err := h.cfg.Repository(r.Context(), req.name); err != nil {
		if errors.Is(err, ErrNoRepository) {
			return errorf(http.StatusNotFound, codeNameUnknown, fmt.Sprintf("no repository %s: a repository is an app's, create the app first", req.name))
		}
		return err
	}
	write := r.Method != http.MethodGet && r.Method != http.MethodHead
	if write && r.Method != http.MethodDelete && h.cfg.Refuse != nil {
		if err := h.cfg.Refuse(); err != nil {
			return errorf(http.StatusServiceUnavailable, codeTooManyRequests, err.Error())
		}
	}
	switch req.kind {
	case "blobs":
		return h.blob(w, r, req)
	case "uploads":
		return h.upload(w, r, req)
	case "manifests":
		return h.manifest(w, r, req)
	case "tags":
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			return methodNotAllowed(w, "GET, HEAD")
		}
		return h.tagsList(w, r, req)
	case "referrers":
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			return methodNotAllowed(w, "GET, HEAD")
		}
		return h.referrers(w, r, req)
	}
	return errorf(http.StatusNotFound, codeUnsupported, "no such endpoint")
}

func methodNotAllowed(w http.ResponseWriter, allow string) error {
	w.Header().Set("Allow", allow)
	return errorf(http.StatusMethodNotAllowed, codeUnsupported, "method not allowed")
}

// parseDigest checks a digest and returns its hex: only sha256, the
// blobstore's.
func parseDigest(d string) (string, error) {
	if !digestRE.MatchString(d) {
		return "", errorf(http.StatusBadRequest, codeDigestInvalid, "invalid digest "+d)
	}
	alg, hex, _ := strings.Cut(d, ":")
	if alg != "sha256" {
		return "", errorf(http.StatusBadRequest, codeDigestInvalid, "unsupported digest algorithm "+alg+": pier stores sha256 only")
	}
	if !blobstore.ValidDigest(hex) {
		return "", errorf(http.StatusBadRequest, codeDigestInvalid, "invalid digest "+d)
	}
	return hex, nil
}

// openBlob opens a blob of the blobstore, copying it from another server
// first if this one lacks it.
func (h *handler) openBlob(ctx context.Context, hex string) (*os.File, blobstore.Blob, error) {
	f, b, err := h.cfg.Blobs.Open(hex)
	if errors.Is(err, blobstore.ErrNotFound) && h.cfg.Fetch != nil {
		if ferr := h.cfg.Fetch(ctx, hex); ferr == nil {
			f, b, err = h.cfg.Blobs.Open(hex)
		}
	}
	return f, b, err
}
