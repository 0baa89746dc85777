package dashboard_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/dashboard"
	"github.com/pierpaas/pier/store"
	"github.com/pierpaas/pier/store/storetest"
)

// keys is a KeyChecker with a fixed set of valid keys.
type keys map[string]bool

func (k keys) AuthorizeAPIKey(_ context.Context, key string) error {
	if k[key] {
		return nil
	}
	return errors.New("bad key")
}

const goodKey = "pier_0123456789ab_secret"

// sessionEnv is a dashboard in front of an API stand-in that echoes the
// Authorization it was given: what the dashboard lends a request is what
// the real API would authenticate.
func sessionEnv(t *testing.T) (*httptest.Server, *clientv3.Client) {
	t.Helper()
	etcd := storetest.NewCluster(t, 1)
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Method+" "+r.URL.Path+" "+r.Header.Get("Authorization"))
	})
	d := dashboard.New(dashboard.Config{Client: etcd.Client(), Keys: keys{goodKey: true}})
	srv := httptest.NewTLSServer(d.Wrap(api))
	t.Cleanup(srv.Close)
	return srv, etcd.Client()
}

func browserClient(t *testing.T, srv *httptest.Server) *http.Client {
	jar, _ := cookiejar.New(nil)
	c := srv.Client()
	c.Jar = jar
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return c
}

func do(t *testing.T, c *http.Client, method, u string, body io.Reader, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(method, u, body)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func login(t *testing.T, c *http.Client, srv *httptest.Server, key string) *http.Response {
	resp, _ := do(t, c, "POST", srv.URL+"/dashboard/login", strings.NewReader(url.Values{"key": {key}}.Encode()),
		map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"})
	return resp
}

func TestSessionCookieCSRFAndLogout(t *testing.T) {
	srv, etcd := sessionEnv(t)
	c := browserClient(t, srv)

	if resp := login(t, c, srv, "pier_0123456789ab_wrong"); resp.StatusCode != 401 || len(resp.Cookies()) != 0 {
		t.Fatalf("a wrong key: %d, cookies %v", resp.StatusCode, resp.Cookies())
	}
	resp := login(t, c, srv, goodKey)
	if resp.StatusCode != 204 || len(resp.Cookies()) != 1 {
		t.Fatalf("the right key: %d, cookies %v", resp.StatusCode, resp.Cookies())
	}
	ck := resp.Cookies()[0]
	if ck.Name != dashboard.CookieName || !ck.HttpOnly || !ck.Secure || ck.SameSite != http.SameSiteLaxMode || ck.Path != "/" {
		t.Fatalf("session cookie: %+v", ck)
	}
	// The store holds the session, but not the key.
	kvs, err := etcd.Get(context.Background(), store.DashboardSessions, clientv3.WithPrefix())
	if err != nil || len(kvs.Kvs) != 1 || strings.Contains(string(kvs.Kvs[0].Value), "secret") || strings.Contains(string(kvs.Kvs[0].Value), ck.Value) {
		t.Fatalf("stored sessions: %v, %v", kvs, err)
	}

	// Reads get the key; changes need the CSRF token.
	if _, body := do(t, c, "GET", srv.URL+"/v1/apps", nil, nil); body != "GET /v1/apps Bearer "+goodKey {
		t.Fatalf("a read with the cookie reached the API as %q", body)
	}
	resp, body := do(t, c, "PATCH", srv.URL+"/v1/apps/a/formation", strings.NewReader("{}"), nil)
	if resp.StatusCode != 403 || strings.Contains(body, "Bearer") {
		t.Fatalf("a change without the CSRF token: %d %q", resp.StatusCode, body)
	}
	resp, body = do(t, c, "PATCH", srv.URL+"/v1/apps/a/formation", strings.NewReader("{}"), map[string]string{dashboard.CSRFHeader: "forged"})
	if resp.StatusCode != 403 {
		t.Fatalf("a change with a wrong CSRF token: %d %q", resp.StatusCode, body)
	}
	_, body = do(t, c, "GET", srv.URL+"/dashboard/session", nil, nil)
	var info dashboard.SessionInfo
	if err := json.Unmarshal([]byte(body), &info); err != nil || info.CSRF == "" || info.KeyID != "0123456789ab" {
		t.Fatalf("session info %q: %v", body, err)
	}
	if _, body := do(t, c, "PATCH", srv.URL+"/v1/apps/a/formation", strings.NewReader("{}"), map[string]string{dashboard.CSRFHeader: info.CSRF}); body != "PATCH /v1/apps/a/formation Bearer "+goodKey {
		t.Fatalf("a change with the CSRF token reached the API as %q", body)
	}
	// A request's own key is never replaced by the session's.
	if _, body := do(t, c, "GET", srv.URL+"/v1/apps", nil, map[string]string{"Authorization": "Bearer other"}); body != "GET /v1/apps Bearer other" {
		t.Fatalf("a request with its own key reached the API as %q", body)
	}

	// A cross-site sign-in is refused.
	resp, _ = do(t, c, "POST", srv.URL+"/dashboard/login", strings.NewReader("key="+goodKey),
		map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Origin": "https://evil.example"})
	if resp.StatusCode != 403 {
		t.Fatalf("a sign-in posted from another site: %d", resp.StatusCode)
	}

	// Logout needs the token too, then ends the session for the API.
	if resp, _ := do(t, c, "POST", srv.URL+"/dashboard/logout", nil, nil); resp.StatusCode != 403 {
		t.Fatalf("logout without the CSRF token: %d", resp.StatusCode)
	}
	if resp, _ := do(t, c, "POST", srv.URL+"/dashboard/logout", nil, map[string]string{dashboard.CSRFHeader: info.CSRF}); resp.StatusCode != 303 {
		t.Fatalf("logout: %d", resp.StatusCode)
	}
	// The jar dropped the cookie; a stolen copy of it is no good either.
	c.Jar.SetCookies(mustURL(srv.URL), []*http.Cookie{ck})
	if _, body := do(t, c, "GET", srv.URL+"/v1/apps", nil, nil); body != "GET /v1/apps " {
		t.Fatalf("after logout, the old cookie reached the API as %q", body)
	}
}

func TestTicketSignsInOnce(t *testing.T) {
	srv, _ := sessionEnv(t)
	cli := srv.Client()
	if resp, _ := do(t, cli, "POST", srv.URL+api.DashboardTicketsPath, nil, map[string]string{"Authorization": "Bearer nope"}); resp.StatusCode != 401 {
		t.Fatalf("a ticket for a bad key: %d", resp.StatusCode)
	}
	resp, body := do(t, cli, "POST", srv.URL+api.DashboardTicketsPath, nil, map[string]string{"Authorization": "Bearer " + goodKey})
	var tk api.DashboardTicket
	if err := json.Unmarshal([]byte(body), &tk); resp.StatusCode != 201 || err != nil || !strings.HasPrefix(tk.Path, "/dashboard/login?token=") || time.Until(tk.ExpiresAt) > dashboard.DefaultTicketTTL {
		t.Fatalf("ticket: %d %q %v", resp.StatusCode, body, err)
	}
	b1 := browserClient(t, srv)
	resp, _ = do(t, b1, "GET", srv.URL+tk.Path, nil, nil)
	if resp.StatusCode != 303 || resp.Header.Get("Location") != "/" || len(resp.Cookies()) != 1 {
		t.Fatalf("redeeming the ticket: %d to %q, cookies %v", resp.StatusCode, resp.Header.Get("Location"), resp.Cookies())
	}
	if _, body := do(t, b1, "GET", srv.URL+"/v1/apps", nil, nil); body != "GET /v1/apps Bearer "+goodKey {
		t.Fatalf("signed in by ticket, the API got %q", body)
	}
	b2 := browserClient(t, srv)
	resp, _ = do(t, b2, "GET", srv.URL+tk.Path, nil, nil)
	if resp.Header.Get("Location") != "/#ticket-refused" || len(resp.Cookies()) != 0 {
		t.Fatalf("the ticket used twice: to %q, cookies %v", resp.Header.Get("Location"), resp.Cookies())
	}
}

func TestAssetsServedCompressed(t *testing.T) {
	srv, _ := sessionEnv(t)
	c := srv.Client()
	c.Transport.(*http.Transport).DisableCompression = true
	for _, p := range []string{"/", "/assets/app.js", "/assets/style.css"} {
		resp, body := do(t, c, "GET", srv.URL+p, nil, map[string]string{"Accept-Encoding": "gzip"})
		if resp.StatusCode != 200 || resp.Header.Get("Content-Encoding") != "gzip" || len(body) == 0 ||
			!strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'self'") {
			t.Fatalf("%s: %d %v", p, resp.StatusCode, resp.Header)
		}
		resp, _ = do(t, c, "GET", srv.URL+p, nil, map[string]string{"If-None-Match": resp.Header.Get("ETag")})
		if resp.StatusCode != 304 {
			t.Fatalf("%s revalidated: %d", p, resp.StatusCode)
		}
	}
	// Paths the dashboard does not serve go on to the API.
	if _, body := do(t, c, "GET", srv.URL+"/nope", nil, nil); body != "GET /nope " {
		t.Fatalf("an unknown path reached the API as %q", body)
	}
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}
