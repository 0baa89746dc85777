package gitreceive

import (
	"compress/gzip"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/pierpaas/pier/api"
)

// HTTPHandler serves git's smart HTTP protocol:
//
//	GET  .../<app>.git/info/refs?service=git-receive-pack|git-upload-pack
//	POST .../<app>.git/git-receive-pack
//	POST .../<app>.git/git-upload-pack
//
// under /git/ (mount it with mux.Handle("/git/", h), no StripPrefix
// needed, though a stripped path works too). Every request needs an API
// key as the basic-auth password (any user name), which is what git's
// credential helpers supply; a bearer token works too.
//
// It runs `git receive-pack/upload-pack --stateless-rpc` itself rather
// than git http-backend through CGI: the two commands are all of the
// protocol that matters, and running them directly lets the push hold the
// app's lock, carry the hook's token in its environment, stream its output
// with a flush per write, and die with the request, without CGI's header
// parsing or http-backend's dumb-protocol file serving and configuration.
func (r *Receiver) HTTPHandler() http.Handler { return http.HandlerFunc(r.serveHTTP) }

func (r *Receiver) serveHTTP(w http.ResponseWriter, req *http.Request) {
	app, op, ok := parseHTTPPath(req.URL.Path)
	if !ok {
		http.Error(w, "pier: not a git repository URL; use https://HOST/git/APP.git", http.StatusNotFound)
		return
	}
	service := op
	if op == "info/refs" {
		if req.Method != http.MethodGet {
			http.Error(w, "pier: method not allowed", http.StatusMethodNotAllowed)
			return
		}
		service = req.URL.Query().Get("service")
		if service != serviceReceive && service != serviceUpload {
			// The dumb protocol would serve repository files directly.
			http.Error(w, "pier: only git's smart HTTP protocol is served", http.StatusForbidden)
			return
		}
	} else {
		if req.Method != http.MethodPost {
			http.Error(w, "pier: method not allowed", http.StatusMethodNotAllowed)
			return
		}
		if ct := req.Header.Get("Content-Type"); ct != "application/x-"+service+"-request" {
			http.Error(w, "pier: unexpected Content-Type "+ct, http.StatusBadRequest)
			return
		}
	}
	if !r.authorizeHTTP(w, req) {
		return
	}
	if err := api.ValidateAppName(app); err != nil {
		http.Error(w, "pier: "+err.Error(), http.StatusBadRequest)
		return
	}
	ctx := req.Context()
	id, err := r.cfg.Auth.AppID(ctx, app)
	if err == nil {
		err = r.forgetStale(ctx, app, id)
	}
	switch {
	case err != nil:
		r.log.Error("look up app", "app", app, "err", err)
		http.Error(w, "pier: cannot look up the app now; try again later", http.StatusServiceUnavailable)
		return
	case id == "":
		http.Error(w, "pier: there is no app named "+app, http.StatusNotFound)
		return
	}
	var env []string
	if p := req.Header.Get("Git-Protocol"); protocolRE.MatchString(p) {
		env = append(env, "GIT_PROTOCOL="+p)
	}
	noCache(w.Header())
	log := r.log.With("app", app, "service", service, "via", "http")
	if op == "info/refs" {
		r.advertise(w, req, app, id, service, env, log)
	} else {
		r.rpc(w, req, app, id, service, env, log)
	}
}

// advertise answers info/refs: the refs, and the capabilities.
func (r *Receiver) advertise(w http.ResponseWriter, req *http.Request, app, id, service string, env []string, log *slog.Logger) {
	ctx := req.Context()
	var dir string
	if service == serviceReceive {
		// The first push advertises an empty repository, so make it.
		d, err := r.ensureRepo(ctx, app, id)
		if err != nil {
			log.Error("prepare repository", "err", err)
			http.Error(w, "pier: internal error", http.StatusInternalServerError)
			return
		}
		dir = d
	} else if dir = r.repoPath(app); !r.repoExists(app) {
		http.Error(w, "pier: "+app+" has no git repository yet; git push to it first", http.StatusNotFound)
		return
	}
	out, err := r.serviceCommand(ctx, service, dir, env, "--stateless-rpc", "--advertise-refs").Output()
	if err != nil {
		log.Error("advertise refs", "err", err)
		http.Error(w, "pier: internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/x-"+service+"-advertisement")
	// Protocol v2 starts with its capabilities instead; see git's
	// http-backend.
	if len(env) == 0 || env[0] != "GIT_PROTOCOL=version=2" {
		fmt.Fprintf(w, "%04x# service=%s\n0000", 4+len("# service=\n")+len(service), service)
	}
	w.Write(out)
}

// rpc runs one stateless exchange: a push (with its build) or a fetch.
func (r *Receiver) rpc(w http.ResponseWriter, req *http.Request, app, id, service string, env []string, log *slog.Logger) {
	ctx := req.Context()
	var body io.Reader = req.Body
	switch req.Header.Get("Content-Encoding") {
	case "":
	case "gzip", "x-gzip":
		gz, err := gzip.NewReader(req.Body)
		if err != nil {
			http.Error(w, "pier: bad gzip body", http.StatusBadRequest)
			return
		}
		// Not closed: git may stop reading early and leave our copier
		// reading it, and a gzip.Reader holds nothing that needs releasing.
		body = gz
	default:
		http.Error(w, "pier: unsupported Content-Encoding", http.StatusUnsupportedMediaType)
		return
	}
	dir := r.repoPath(app)
	if service == serviceReceive {
		unlock, err := r.lockApp(ctx, app, nil)
		if err != nil {
			return // the client went away
		}
		defer unlock()
		if dir, err = r.ensureRepo(ctx, app, id); err != nil {
			log.Error("prepare repository", "err", err)
			http.Error(w, "pier: internal error", http.StatusInternalServerError)
			return
		}
		penv, end, err := r.startPush(ctx, app, dir, "http:api-key")
		if err != nil {
			http.Error(w, "pier: internal error", http.StatusInternalServerError)
			return
		}
		defer end()
		env = append(env, penv...)
	} else if !r.repoExists(app) {
		http.Error(w, "pier: "+app+" has no git repository yet", http.StatusNotFound)
		return
	}
	// git may answer (sideband progress, the build's output) while the
	// pack still arrives; HTTP/1 needs telling that this is fine.
	rc := http.NewResponseController(w)
	rc.EnableFullDuplex()
	// A push lasts as long as its build: no server-wide timeout applies.
	rc.SetReadDeadline(time.Time{})
	rc.SetWriteDeadline(time.Time{})
	w.Header().Set("Content-Type", "application/x-"+service+"-result")
	out := &flushWriter{w: w, rc: rc}
	var stderr strings.Builder
	err := runService(r.serviceCommand(ctx, service, dir, env, "--stateless-rpc"), body, out, &limitedWriter{w: &stderr, n: 4096})
	if err != nil {
		log.Info("git service failed", "err", err, "stderr", strings.TrimSpace(stderr.String()))
		if !out.started {
			http.Error(w, "pier: git failed", http.StatusInternalServerError)
		}
	}
}

// authorizeHTTP checks the request's API key, and asks for one the way
// git understands (401 with a Basic challenge: git then prompts, or asks
// its credential helper).
func (r *Receiver) authorizeHTTP(w http.ResponseWriter, req *http.Request) bool {
	secret, ok := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer ")
	if !ok {
		_, secret, ok = req.BasicAuth()
	}
	if ok && secret != "" {
		err := r.cfg.Auth.AuthorizeAPIKey(req.Context(), secret)
		if err == nil {
			return true
		}
		r.log.Debug("api key refused", "remote", req.RemoteAddr, "err", err)
	}
	w.Header().Set("WWW-Authenticate", `Basic realm="pier"`)
	http.Error(w, "pier: an API key is required as the password (any user name)", http.StatusUnauthorized)
	return false
}

// parseHTTPPath splits /git/<app>.git/<op> (or /<app>.git/<op>, the same
// with the prefix stripped) into app and op. The name is validated later.
func parseHTTPPath(p string) (app, op string, ok bool) {
	for _, op := range []string{"info/refs", serviceReceive, serviceUpload} {
		rest, found := strings.CutSuffix(p, "/"+op)
		if !found {
			continue
		}
		if r, ok := strings.CutPrefix(rest, "/git/"); ok {
			rest = r
		} else if rest, ok = strings.CutPrefix(rest, "/"); !ok {
			return "", "", false
		}
		rest = strings.TrimSuffix(rest, ".git")
		if rest == "" || strings.Contains(rest, "/") {
			return "", "", false
		}
		return rest, op, true
	}
	return "", "", false
}

func noCache(h http.Header) {
	h.Set("Expires", "Fri, 01 Jan 1980 00:00:00 GMT")
	h.Set("Pragma", "no-cache")
	h.Set("Cache-Control", "no-cache, max-age=0, must-revalidate")
}

// flushWriter flushes every write, so the build's output reaches the
// pusher when it is made, not when a buffer fills.
type flushWriter struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	started bool
}

func (f *flushWriter) Write(p []byte) (int, error) {
	f.started = true
	n, err := f.w.Write(p)
	if err == nil {
		err = f.rc.Flush()
	}
	return n, err
}
