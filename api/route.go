package api

import (
	"crypto/tls"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Route types.
const (
	RouteHTTP = "http"
	RouteTCP  = "tcp"
)

// Route sends public traffic to a service, written by the controller (its
// only writer) under /pier/routes/<id> (store.RoutesPrefix). An http route
// matches a domain and a path prefix; a tcp route owns one port of the
// router's TCP range. The router builds its tables from every route.
type Route struct {
	ID   string `json:"id"`
	Type string `json:"type"` // RouteHTTP or RouteTCP

	// Domain, for http routes: a lower-case DNS name ("hello.example.com")
	// or a wildcard whose whole first label is "*" ("*.example.com"),
	// which matches exactly one label in its place, as a TLS wildcard
	// certificate does. Internationalised names are given in punycode
	// ("xn--bcher-kva.example"). No trailing dot.
	Domain string `json:"domain,omitempty"`
	// Path, for http routes: a path prefix matched on segment boundaries
	// ("/api" matches "/api" and "/api/x", not "/apix"). Empty means "/".
	Path string `json:"path,omitempty"`
	// Service is the discovery service whose instances take the traffic.
	Service string `json:"service"`
	// Port, for tcp routes: the router port, 1–65535.
	Port int `json:"port,omitempty"`

	// Sticky pins a client to one backend with a signed cookie (http).
	Sticky bool `json:"sticky,omitempty"`
	// RedirectHTTPS answers plain HTTP requests with a redirect to https.
	RedirectHTTPS bool `json:"redirect_https,omitempty"`
	// LeaderOnly sends traffic only to the service's discovery leader.
	LeaderOnly bool `json:"leader_only,omitempty"`
	// TLS is the route's own certificate; ACME asks the router to obtain
	// one. At most one of the two (http routes only).
	TLS  *RouteTLS `json:"tls,omitempty"`
	ACME bool      `json:"acme,omitempty"`
	// DrainTimeout is how long connections may finish once the route is
	// removed; 0 is the router's default.
	DrainTimeout Duration  `json:"drain_timeout,omitempty"`
	CreatedAt    time.Time `json:"created_at"`
}

// RouteTLS is a certificate chain and its private key, both PEM.
type RouteTLS struct {
	CertPEM string `json:"cert_pem"`
	KeyPEM  string `json:"key_pem"`
}

// Limits of a domain name.
const (
	maxDomain = 253
	maxLabel  = 63
)

var (
	// domainLabelRE is one DNS label (LDH, letters lower-case). Hyphens
	// may repeat inside a label, so punycode ("xn--...") passes.
	domainLabelRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)
	// serviceRE is discovery's rule for service names (discovery.ValidService):
	// lower-case DNS labels joined by dots.
	serviceRE = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*(\.[a-z0-9]+(-[a-z0-9]+)*)*$`)
)

// ValidDomain checks a route's domain: lower-case DNS labels joined by
// dots, at most 253 characters, each label at most 63, no trailing dot;
// the first label may be "*" (a wildcard) if another label follows.
func ValidDomain(d string) error {
	if d == "" {
		return errors.New("empty domain")
	}
	if len(d) > maxDomain {
		return fmt.Errorf("domain %q longer than %d characters", d, maxDomain)
	}
	labels := strings.Split(d, ".")
	for i, l := range labels {
		if l == "*" && i == 0 {
			if len(labels) == 1 {
				return fmt.Errorf("domain %q: a wildcard needs a domain after it", d)
			}
			continue
		}
		if len(l) > maxLabel {
			return fmt.Errorf("domain %q: label %q longer than %d", d, l, maxLabel)
		}
		if !domainLabelRE.MatchString(l) {
			return fmt.Errorf("domain %q: invalid label %q (lower-case letters, digits and inner hyphens; \"*\" only as the whole first label)", d, l)
		}
	}
	return nil
}

// ValidRoutePath checks an http route's path prefix: it starts with '/',
// has no empty (except a trailing slash), "." or ".." segments, and no
// query, fragment, whitespace or control characters.
func ValidRoutePath(p string) error {
	if p == "" {
		return nil // "/"
	}
	if p[0] != '/' {
		return fmt.Errorf("path %q must start with '/'", p)
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c <= ' ' || c == 0x7f || c == '?' || c == '#' {
			return fmt.Errorf("path %q: invalid character %q", p, c)
		}
	}
	segs := strings.Split(strings.TrimSuffix(p[1:], "/"), "/")
	for _, s := range segs {
		switch s {
		case "":
			if p != "/" {
				return fmt.Errorf("path %q has an empty segment", p)
			}
		case ".", "..":
			return fmt.Errorf("path %q has a %q segment", p, s)
		}
	}
	return nil
}

// CanonicalPath is the prefix a route's path stands for: "/" for "", and
// no trailing slash otherwise ("/api/" is "/api").
func CanonicalPath(p string) string {
	if p == "" || p == "/" {
		return "/"
	}
	return strings.TrimSuffix(p, "/")
}

// Validate checks a route before it is stored.
func (r *Route) Validate() error {
	if !ValidID(r.ID) {
		return fmt.Errorf("invalid route id %q", r.ID)
	}
	if len(r.Service) == 0 || len(r.Service) > 128 || !serviceRE.MatchString(r.Service) {
		return fmt.Errorf("route %s: invalid service %q", r.ID, r.Service)
	}
	for _, l := range strings.Split(r.Service, ".") {
		if len(l) > maxLabel {
			return fmt.Errorf("route %s: service %q: label longer than %d", r.ID, r.Service, maxLabel)
		}
	}
	if r.DrainTimeout < 0 {
		return fmt.Errorf("route %s: negative drain timeout", r.ID)
	}
	switch r.Type {
	case RouteHTTP:
		if r.Domain == "" {
			return fmt.Errorf("route %s: an http route needs a domain", r.ID)
		}
		if err := ValidDomain(r.Domain); err != nil {
			return fmt.Errorf("route %s: %w", r.ID, err)
		}
		if err := ValidRoutePath(r.Path); err != nil {
			return fmt.Errorf("route %s: %w", r.ID, err)
		}
		if r.Port != 0 {
			return fmt.Errorf("route %s: an http route has no port", r.ID)
		}
		if r.TLS != nil && r.ACME {
			return fmt.Errorf("route %s: a certificate and ACME are exclusive", r.ID)
		}
		if r.ACME && strings.HasPrefix(r.Domain, "*.") {
			// HTTP-01 and TLS-ALPN-01 cannot prove a wildcard.
			return fmt.Errorf("route %s: ACME cannot issue for wildcard %q", r.ID, r.Domain)
		}
		if r.TLS != nil {
			if r.TLS.CertPEM == "" || r.TLS.KeyPEM == "" {
				return fmt.Errorf("route %s: TLS needs a certificate and a key", r.ID)
			}
			if _, err := tls.X509KeyPair([]byte(r.TLS.CertPEM), []byte(r.TLS.KeyPEM)); err != nil {
				return fmt.Errorf("route %s: TLS: %w", r.ID, err)
			}
		}
	case RouteTCP:
		if r.Port < 1 || r.Port > 65535 {
			return fmt.Errorf("route %s: tcp port %d out of range 1-65535", r.ID, r.Port)
		}
		if r.Domain != "" || r.Path != "" {
			return fmt.Errorf("route %s: a tcp route has no domain or path", r.ID)
		}
		if r.TLS != nil || r.ACME || r.Sticky || r.RedirectHTTPS {
			return fmt.Errorf("route %s: TLS, ACME, sticky and redirect-https are for http routes", r.ID)
		}
	default:
		return fmt.Errorf("route %s: type %q must be http or tcp", r.ID, r.Type)
	}
	return nil
}
