package router

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	nethttp "net/http"
	"strings"

	"github.com/pierpaas/pier/api"
)

// Sticky sessions pin a client to one backend with a cookie naming the
// backend's instance ID. The cookie is signed (HMAC-SHA256 with
// Config.StickyKey) so that a client cannot pick, or probe, instances of
// its choosing; a cookie that fails the check, or names an instance
// discovery no longer lists, is ignored and replaced. The instance ID,
// not its address, is what is pinned: an instance that re-registers under
// a new address keeps its clients.

// stickyCookiePrefix starts the name of a route's sticky cookie; the
// route ID follows, so routes of one domain do not share a cookie.
const stickyCookiePrefix = "pier_sticky_"

// stickyMACLen is how much of the HMAC the cookie carries: 128 bits is
// far beyond guessing, and keeps the cookie short.
const stickyMACLen = 16

func stickyCookieName(route *api.Route) string { return stickyCookiePrefix + route.ID }

// stickyMAC signs an instance ID for one route and service, so a cookie
// is worth nothing on another route or after the route changes service.
func (p *Proxy) stickyMAC(route *api.Route, instance string) []byte {
	m := hmac.New(sha256.New, p.cfg.StickyKey)
	m.Write([]byte(route.ID))
	m.Write([]byte{0})
	m.Write([]byte(route.Service))
	m.Write([]byte{0})
	m.Write([]byte(instance))
	return m.Sum(nil)[:stickyMACLen]
}

// stickyInstance is the instance ID a request's valid sticky cookie
// names, or "".
func (p *Proxy) stickyInstance(req *nethttp.Request, route *api.Route) string {
	c, err := req.Cookie(stickyCookieName(route))
	if err != nil {
		return ""
	}
	// Instance IDs are DNS labels: no dot, so the last one separates.
	i := strings.LastIndexByte(c.Value, '.')
	if i <= 0 {
		return ""
	}
	id := c.Value[:i]
	mac, err := base64.RawURLEncoding.DecodeString(c.Value[i+1:])
	if err != nil || !hmac.Equal(mac, p.stickyMAC(route, id)) {
		return ""
	}
	return id
}

// stickyCookie pins the client to instance for route. It lives for the
// browser session, on the route's path only; Secure when the request
// came over TLS, so that it is not sent in the clear afterwards.
func (p *Proxy) stickyCookie(route *api.Route, instance string, secure bool) *nethttp.Cookie {
	return &nethttp.Cookie{
		Name:     stickyCookieName(route),
		Value:    instance + "." + base64.RawURLEncoding.EncodeToString(p.stickyMAC(route, instance)),
		Path:     api.CanonicalPath(route.Path),
		HttpOnly: true,
		Secure:   secure,
		SameSite: nethttp.SameSiteLaxMode,
	}
}
