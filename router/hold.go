package router

import (
	"fmt"
	"html"
	nethttp "net/http"
	"strings"

	"github.com/pierpaas/pier/api"
)

// Hold is why a router answers an app's HTTP requests itself, with 503
// and a small page, instead of proxying them.
type Hold int

const (
	// HoldMaintenance: the app is in maintenance mode (App.Maintenance).
	HoldMaintenance Hold = iota + 1
	// HoldNotDeployed: the app has no release serving yet: its first
	// deployment has not finished (or not started). Its domain answers 503
	// meanwhile, not 404 as if it did not exist.
	HoldNotDeployed
)

// held is a route's hold and the app it holds.
type held struct {
	hold Hold
	app  string
}

// AppHolds says which apps are held and why: maintenance first, then the
// apps that have no release yet.
func AppHolds(apps []api.App) map[string]Hold {
	holds := map[string]Hold{}
	for _, a := range apps {
		switch {
		case a.Maintenance:
			holds[a.Name] = HoldMaintenance
		case a.Release == "":
			holds[a.Name] = HoldNotDeployed
		}
	}
	return holds
}

// WithHolds returns a copy of t in which the http routes of the apps in
// holds (routes to "<type>.<app>") answer with their hold's page. t is
// not changed.
func (t *Table) WithHolds(holds map[string]Hold) *Table {
	if t == nil || len(holds) == 0 {
		return t
	}
	c := *t
	c.held = map[*api.Route]held{}
	for _, r := range t.routes {
		if r.Type != api.RouteHTTP {
			continue
		}
		if app := serviceApp(r.Service); app != "" {
			if h, ok := holds[app]; ok {
				c.held[r] = held{h, app}
			}
		}
	}
	return &c
}

// Held reports whether a route of the table is held, and for which app.
func (t *Table) Held(r *api.Route) (Hold, string) {
	if t == nil || len(t.held) == 0 {
		return 0, ""
	}
	h := t.held[r]
	return h.hold, h.app
}

// serviceApp is the app of an app's service ("web.hello" → "hello"), or
// "" for another service.
func serviceApp(service string) string {
	_, app, ok := strings.Cut(service, ".")
	if !ok || strings.Contains(app, ".") {
		return ""
	}
	return app
}

// holdPage answers a held request: 503, with a page a browser shows and
// a Retry-After a client can heed.
func holdPage(w nethttp.ResponseWriter, r *nethttp.Request, hold Hold, app string) {
	title, text := "Offline for maintenance", "This app is undergoing maintenance. Please check back soon."
	if hold == HoldNotDeployed {
		title, text = "Not deployed yet", "The app "+app+" has no release running yet. It answers here once its first deploy is healthy."
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	h.Set("Retry-After", "30")
	w.WriteHeader(nethttp.StatusServiceUnavailable)
	if r.Method == nethttp.MethodHead {
		return
	}
	fmt.Fprintf(w, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>%s</title></head>\n"+
		"<body style=\"font-family:sans-serif;text-align:center;margin-top:15%%\"><h1>%s</h1><p>%s</p></body></html>\n",
		html.EscapeString(title), html.EscapeString(title), html.EscapeString(text))
}
