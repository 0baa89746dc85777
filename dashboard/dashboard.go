package dashboard

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pierpaas/pier/api"
)

const (
	// CookieName has the __Host- prefix: browsers keep such a cookie only
	// if it is Secure, has Path=/ and no Domain, so no sibling host can
	// plant or overwrite it.
	CookieName = "__Host-pier_session"
	// CSRFHeader carries the session's CSRF token on every change.
	CSRFHeader = "X-CSRF-Token"
	// DefaultSessionTTL is how long a sign-in lasts; DefaultTicketTTL how
	// long a URL printed by `pier dashboard` can be opened.
	DefaultSessionTTL = 12 * time.Hour
	DefaultTicketTTL  = 2 * time.Minute
)

// KeyChecker says whether an API key is valid (the controller).
type KeyChecker interface {
	AuthorizeAPIKey(ctx context.Context, key string) error
}

// Config is what a dashboard needs from the server it runs in.
type Config struct {
	Client     *clientv3.Client
	Keys       KeyChecker
	Log        *slog.Logger
	SessionTTL time.Duration
	TicketTTL  time.Duration
	// Now is the clock (time.Now when nil), for tests.
	Now func() time.Time
}

// Dashboard serves the web UI and turns its session cookies into API keys
// for the API behind it.
type Dashboard struct {
	cfg      Config
	sessions *sessions
	assets   *assets
}

// New returns a dashboard.
func New(cfg Config) *Dashboard {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = DefaultSessionTTL
	}
	if cfg.TicketTTL <= 0 {
		cfg.TicketTTL = DefaultTicketTTL
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Dashboard{cfg: cfg, sessions: &sessions{client: cfg.Client, now: cfg.Now}, assets: loadAssets()}
}

// Wrap puts the dashboard in front of the API handler: it serves the page
// at / and its sign-in endpoints under /dashboard/, and lets a request
// that carries a session cookie (and no key of its own) through to the
// API as if it carried the session's key. The API does the rest
// (authorization, audit) exactly as for the CLI: the dashboard has no data
// endpoints of its own.
func (d *Dashboard) Wrap(next http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", d.assets.serveIndex)
	mux.HandleFunc("GET /assets/{file}", d.assets.serveAsset)
	mux.HandleFunc("POST /dashboard/login", d.login)
	mux.HandleFunc("GET /dashboard/login", d.redeem)
	mux.HandleFunc("POST /dashboard/logout", d.logout)
	mux.HandleFunc("GET /dashboard/session", d.session)
	mux.HandleFunc("POST "+api.DashboardTicketsPath, d.ticket)
	mux.Handle("/", d.withSession(next))
	return mux
}

// withSession lends the session's key to a request that brings a cookie
// and no Authorization of its own, after checking the CSRF token of any
// request that may change something.
func (d *Dashboard) withSession(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := r.Cookie(CookieName)
		if err != nil || r.Header.Get("Authorization") != "" {
			next.ServeHTTP(w, r)
			return
		}
		rec, key, err := d.sessions.get(r.Context(), c.Value)
		if err != nil {
			if !errors.Is(err, ErrNoSession) {
				d.cfg.Log.Warn("dashboard: reading a session", "err", err)
			}
			// Without a key the API answers 401, and the page asks the
			// user to sign in again.
			next.ServeHTTP(w, r)
			return
		}
		if !safeMethod(r.Method) && !sameToken(r.Header.Get(CSRFHeader), rec.CSRF) {
			writeError(w, http.StatusForbidden, api.Errorf(api.ErrCodeUnauthenticated,
				"a change made with a dashboard session must carry its CSRF token (%s)", CSRFHeader))
			return
		}
		r = r.Clone(r.Context())
		r.Header.Set("Authorization", "Bearer "+key)
		next.ServeHTTP(w, r)
	})
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

func sameToken(got, want string) bool {
	return got != "" && want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// login signs in with an API key, sent as the form field "key". A page
// script asks for JSON (Accept: application/json) and gets 204 or 401; a
// plain form post is redirected back to the page.
func (d *Dashboard) login(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		writeError(w, http.StatusForbidden, api.Errorf(api.ErrCodeUnauthenticated, "sign-in from another site refused"))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	key := strings.TrimSpace(r.PostFormValue("key"))
	wantJSON := strings.Contains(r.Header.Get("Accept"), "application/json")
	if key == "" || d.cfg.Keys.AuthorizeAPIKey(r.Context(), key) != nil {
		d.cfg.Log.Info("dashboard: sign-in refused", "remote", r.RemoteAddr)
		if wantJSON {
			writeError(w, http.StatusUnauthorized, api.Errorf(api.ErrCodeUnauthenticated, "the API key is not valid"))
		} else {
			http.Redirect(w, r, "/#signin-refused", http.StatusSeeOther)
		}
		return
	}
	if err := d.startSession(w, r, key); err != nil {
		d.internalError(w, err)
		return
	}
	if wantJSON {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// redeem signs in with a one-time ticket from `pier dashboard`.
func (d *Dashboard) redeem(w http.ResponseWriter, r *http.Request) {
	securityHeaders(w.Header())
	_, key, err := d.sessions.redeem(r.Context(), r.URL.Query().Get("token"))
	if err == nil {
		// The key may have been revoked since the ticket was made.
		err = d.cfg.Keys.AuthorizeAPIKey(r.Context(), key)
	}
	if err != nil {
		d.cfg.Log.Info("dashboard: sign-in ticket refused", "remote", r.RemoteAddr, "err", err)
		http.Redirect(w, r, "/#ticket-refused", http.StatusSeeOther)
		return
	}
	if err := d.startSession(w, r, key); err != nil {
		d.internalError(w, err)
		return
	}
	// Redirected, so the ticket leaves the address bar (and history).
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (d *Dashboard) startSession(w http.ResponseWriter, r *http.Request, key string) error {
	t, rec, err := d.sessions.create(r.Context(), "session", key, keyID(key), d.cfg.SessionTTL)
	if err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{
		Name: CookieName, Value: t.String(), Path: "/", Expires: rec.ExpiresAt,
		HttpOnly: true, Secure: true, SameSite: http.SameSiteLaxMode,
	})
	d.cfg.Log.Info("dashboard: signed in", "key", rec.KeyID, "remote", r.RemoteAddr)
	return nil
}

// logout ends the session. It is a change like any other: it needs the
// CSRF token (header, or form field "csrf"), or another site could sign
// the user out.
func (d *Dashboard) logout(w http.ResponseWriter, r *http.Request) {
	c, err := r.Cookie(CookieName)
	if err != nil {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	rec, _, err := d.sessions.get(r.Context(), c.Value)
	if err == nil {
		tok := r.Header.Get(CSRFHeader)
		if tok == "" {
			r.Body = http.MaxBytesReader(w, r.Body, 4096)
			tok = r.PostFormValue("csrf")
		}
		if !sameToken(tok, rec.CSRF) {
			writeError(w, http.StatusForbidden, api.Errorf(api.ErrCodeUnauthenticated, "sign-out needs the session's CSRF token"))
			return
		}
		if err := d.sessions.remove(r.Context(), c.Value); err != nil {
			d.internalError(w, err)
			return
		}
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: true, SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// SessionInfo is what GET /dashboard/session tells the page: who it is
// signed in as, and the CSRF token its changes must carry.
type SessionInfo struct {
	KeyID     string    `json:"key_id"`
	CSRF      string    `json:"csrf"`
	ExpiresAt time.Time `json:"expires_at"`
}

func (d *Dashboard) session(w http.ResponseWriter, r *http.Request) {
	c, err := r.Cookie(CookieName)
	if err == nil {
		var rec session
		var key string
		if rec, key, err = d.sessions.get(r.Context(), c.Value); err == nil {
			// A revoked key ends its sessions.
			err = d.cfg.Keys.AuthorizeAPIKey(r.Context(), key)
		}
		if err == nil {
			w.Header().Set("Cache-Control", "no-store")
			writeJSON(w, http.StatusOK, SessionInfo{KeyID: rec.KeyID, CSRF: rec.CSRF, ExpiresAt: rec.ExpiresAt})
			return
		}
	}
	writeError(w, http.StatusUnauthorized, api.Errorf(api.ErrCodeUnauthenticated, "not signed in"))
}

// ticket makes a one-time sign-in URL for the key the request carries
// (what `pier dashboard` asks for).
func (d *Dashboard) ticket(w http.ResponseWriter, r *http.Request) {
	key, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || d.cfg.Keys.AuthorizeAPIKey(r.Context(), key) != nil {
		writeError(w, http.StatusUnauthorized, api.Errorf(api.ErrCodeUnauthenticated, "an API key is required (Authorization: Bearer KEY)"))
		return
	}
	t, rec, err := d.sessions.create(r.Context(), "ticket", key, keyID(key), d.cfg.TicketTTL)
	if err != nil {
		d.internalError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, api.DashboardTicket{
		Path: "/dashboard/login?token=" + url.QueryEscape(t.String()), ExpiresAt: rec.ExpiresAt,
	})
}

// sameOrigin refuses a cross-site form post (login CSRF: being signed in
// as someone else). Browsers send Origin on every POST.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true // not a browser, or an old one
	}
	// "null" (a sandboxed frame, or a page with no referrer policy to
	// tell) is refused with the rest: the page sends its real origin.
	u, err := url.Parse(o)
	return err == nil && u.Host == r.Host
}

// keyID is the public id inside a key ("pier_<id>_<secret>"), for logs
// and for the page to say who is signed in.
func keyID(key string) string {
	parts := strings.SplitN(key, "_", 3)
	if len(parts) == 3 {
		return parts[1]
	}
	return ""
}

func (d *Dashboard) internalError(w http.ResponseWriter, err error) {
	d.cfg.Log.Error("dashboard", "err", err)
	writeError(w, http.StatusInternalServerError, api.Errorf(api.ErrCodeInternal, "internal error"))
}

func writeError(w http.ResponseWriter, status int, err *api.Error) { writeJSON(w, status, err) }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
