package cli

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/client"
	"github.com/pierpaas/pier/router"
)

// routeCommands are `pier routes ...`, `pier domains ...` and Heroku's
// spellings domains:add and domains:remove (hidden, like config:set).
func routeCommands() []*cobra.Command {
	add, remove := newDomainsAddCmd("domains:add"), newDomainsRemoveCmd("domains:remove")
	add.Hidden, remove.Hidden = true, true
	return []*cobra.Command{newRoutesCmd(), newDomainsCmd(), add, remove}
}

func newRoutesCmd() *cobra.Command {
	cmd := listing[api.Route]{
		Use:   "routes",
		Short: "List an app's routes: its automatic one and the http and tcp routes added to it",
		Long: `List an app's routes. An app whose release has a web process answers at
APP.<cluster domain> without a stored route: that automatic route is shown
with the option "auto" (a route added for the same domain and path "/"
overrides it). TLS private keys are never shown; a certificate's expiry is.`,
		Header: []string{"ID", "TYPE", "DOMAIN/PORT", "PATH", "SERVICE", "OPTIONS"},
		Row: func(rt api.Route) []string {
			addr, path := rt.Domain, api.CanonicalPath(rt.Path)
			if rt.Type == api.RouteTCP {
				addr, path = strconv.Itoa(rt.Port), "-"
			}
			return []string{rt.ID, rt.Type, addr, path, rt.Service, routeOptions(rt)}
		},
	}.appCommand(func(c *client.Controller, ctx context.Context, app string) ([]api.Route, error) {
		return appRoutes(ctx, c, app)
	})
	add := &cobra.Command{
		Use:   "add http DOMAIN | tcp",
		Short: "Add an http or a tcp route",
		Args:  cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return fmt.Errorf("want pier routes add http DOMAIN, or pier routes add tcp")
		},
	}
	add.AddCommand(newRouteAddHTTPCmd("http DOMAIN", false), newRouteAddTCPCmd())
	cmd.AddCommand(add, newRouteRemoveCmd())
	return cmd
}

// httpRouteFlags are the options of an http route.
type httpRouteFlags struct {
	path, service, cert, key string
	acme, sticky, redirect   bool
	leaderOnly, asJSON       bool
	drain                    time.Duration
}

func (f *httpRouteFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.path, "path", "", "path prefix the route matches (default /)")
	fl.StringVar(&f.service, "service", "", "the process type or service taking the traffic: web, or TYPE.APP (default web)")
	fl.StringVar(&f.cert, "cert", "", "PEM file of the route's certificate chain (with --key)")
	fl.StringVar(&f.key, "key", "", "PEM file of the certificate's private key")
	fl.BoolVar(&f.acme, "acme", false, "have the router obtain a certificate over ACME (Let's Encrypt)")
	fl.BoolVar(&f.sticky, "sticky", false, "keep each client on one backend (signed cookie)")
	fl.BoolVar(&f.redirect, "redirect-https", false, "answer plain HTTP with a redirect to HTTPS")
	fl.BoolVar(&f.leaderOnly, "leader-only", false, "send traffic only to the service's leader")
	fl.DurationVar(&f.drain, "drain-timeout", 0, "how long requests may finish once the route is removed (default: the router's)")
	fl.BoolVar(&f.asJSON, "json", false, "print the route as JSON")
}

// route builds the http route for domain from the flags.
func (f *httpRouteFlags) route(app, domain string) (api.Route, error) {
	rt := api.Route{Type: api.RouteHTTP, Domain: domain, Path: f.path, Service: serviceOf(app, f.service),
		ACME: f.acme, Sticky: f.sticky, RedirectHTTPS: f.redirect, LeaderOnly: f.leaderOnly, DrainTimeout: api.Duration(f.drain)}
	if err := f.check(); err != nil {
		return rt, err
	}
	if f.cert != "" {
		cert, err := os.ReadFile(f.cert)
		if err != nil {
			return rt, err
		}
		key, err := os.ReadFile(f.key)
		if err != nil {
			return rt, err
		}
		rt.TLS = &api.RouteTLS{CertPEM: string(cert), KeyPEM: string(key)}
	}
	return rt, nil
}

// check finds the flags' own contradictions, before anything is asked
// of the controller.
func (f *httpRouteFlags) check() error {
	switch {
	case (f.cert == "") != (f.key == ""):
		return fmt.Errorf("--cert and --key go together")
	case f.cert != "" && f.acme:
		return fmt.Errorf("--cert/--key and --acme are exclusive: bring a certificate, or have one obtained")
	}
	return nil
}

// serviceOf expands a --service: "worker" is "worker.APP"; empty is the
// controller's default (web.APP).
func serviceOf(app, s string) string {
	if s != "" && !strings.Contains(s, ".") {
		return api.ServiceName(app, s)
	}
	return s
}

func newRouteAddHTTPCmd(use string, domainsAlias bool) *cobra.Command {
	var ac appCommand
	var f httpRouteFlags
	cmd := &cobra.Command{
		Use:   use,
		Short: "Route a domain (and path prefix) to the app's web process, or another with --service",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.check(); err != nil {
				return err
			}
			app, c, err := ac.resolve()
			if err != nil {
				return err
			}
			defer c.Close()
			rt, err := f.route(app, args[0])
			if err != nil {
				return err
			}
			return addRoute(cmd.Context(), c, app, rt, f.asJSON)
		},
	}
	if domainsAlias {
		cmd.Short = "Route a domain to the app's web process (pier routes add http DOMAIN)"
	}
	ac.register(cmd)
	f.register(cmd)
	return cmd
}

func newRouteAddTCPCmd() *cobra.Command {
	var port int
	var service string
	var leaderOnly, asJSON bool
	var drain time.Duration
	cmd := appAction(&cobra.Command{
		Use:   "tcp",
		Short: "Route a port of the routers to the app's web process, or another with --service; prints the port",
		Args:  cobra.NoArgs,
	}, func(cmd *cobra.Command, c *client.Controller, app string, _ []string) error {
		rt := api.Route{Type: api.RouteTCP, Port: port, Service: serviceOf(app, service),
			LeaderOnly: leaderOnly, DrainTimeout: api.Duration(drain)}
		return addRoute(cmd.Context(), c, app, rt, asJSON)
	})
	fl := cmd.Flags()
	fl.IntVar(&port, "port", 0, "the router port (default: a free one of the cluster's tcp range)")
	fl.StringVar(&service, "service", "", "the process type or service taking the connections: web, or TYPE.APP (default web)")
	fl.BoolVar(&leaderOnly, "leader-only", false, "send connections only to the service's leader (databases)")
	fl.DurationVar(&drain, "drain-timeout", 0, "how long connections may go on once the route is removed (default: the router's)")
	fl.BoolVar(&asJSON, "json", false, "print the route as JSON")
	return cmd
}

func addRoute(ctx context.Context, c *client.Controller, app string, rt api.Route, asJSON bool) error {
	rt, err := c.AddRoute(ctx, app, rt)
	if err != nil || asJSON {
		return orJSON(rt, err)
	}
	fmt.Printf("Added route %s: %s to %s\n", rt.ID, routeAddress(rt), rt.Service)
	return nil
}

func routeAddress(rt api.Route) string {
	if rt.Type == api.RouteTCP {
		return fmt.Sprintf("tcp port %d", rt.Port)
	}
	scheme := "http"
	if rt.TLS != nil || rt.ACME {
		scheme = "https"
	}
	return fmt.Sprintf("%s://%s%s", scheme, rt.Domain, api.CanonicalPath(rt.Path))
}

func newRouteRemoveCmd() *cobra.Command {
	return appAction(&cobra.Command{
		Use:     "remove ID...",
		Aliases: []string{"rm"},
		Short:   "Remove routes by id (see pier routes)",
		Args:    cobra.MinimumNArgs(1),
	}, func(cmd *cobra.Command, c *client.Controller, app string, args []string) error {
		for _, id := range args {
			if err := c.RemoveRoute(cmd.Context(), app, id); err != nil {
				return err
			}
			fmt.Printf("Removed route %s\n", id)
		}
		return nil
	})
}

func newDomainsCmd() *cobra.Command {
	cmd := listing[api.Route]{
		Use: "domains", Short: "List the domains an app answers on: its http routes",
		Header: []string{"DOMAIN", "PATH", "SERVICE", "ID", "OPTIONS"},
		Row: func(rt api.Route) []string {
			return []string{rt.Domain, api.CanonicalPath(rt.Path), rt.Service, rt.ID, routeOptions(rt)}
		},
	}.appCommand(func(c *client.Controller, ctx context.Context, app string) ([]api.Route, error) {
		routes, err := appRoutes(ctx, c, app)
		httpRoutes := []api.Route{}
		for _, rt := range routes {
			if rt.Type == api.RouteHTTP {
				httpRoutes = append(httpRoutes, rt)
			}
		}
		return httpRoutes, err
	})
	cmd.AddCommand(newDomainsAddCmd("add"), newDomainsRemoveCmd("remove"))
	return cmd
}

func newDomainsAddCmd(name string) *cobra.Command {
	return newRouteAddHTTPCmd(name+" DOMAIN", true)
}

func newDomainsRemoveCmd(name string) *cobra.Command {
	return appAction(&cobra.Command{
		Use:   name + " DOMAIN",
		Short: "Remove every route of the app for a domain, whatever its path",
		Args:  cobra.ExactArgs(1),
	}, func(cmd *cobra.Command, c *client.Controller, app string, args []string) error {
		routes, err := appRoutes(cmd.Context(), c, app)
		if err != nil {
			return err
		}
		removed, auto := 0, false
		for _, rt := range routes {
			if rt.Type != api.RouteHTTP || rt.Domain != args[0] {
				continue
			}
			if isAutoRoute(rt) {
				auto = true
				continue
			}
			if err := c.RemoveRoute(cmd.Context(), app, rt.ID); err != nil {
				return err
			}
			fmt.Printf("Removed %s (route %s)\n", routeAddress(rt), rt.ID)
			removed++
		}
		switch {
		case removed == 0 && auto:
			return fmt.Errorf("%s is %s's automatic domain: it stays while the app has a web process", args[0], app)
		case removed == 0:
			return fmt.Errorf("%s has no route for %s (see pier domains -a %s)", app, args[0], app)
		}
		return nil
	})
}

// appRoutes is an app's stored routes, with the automatic route of its
// web process first when it has one that no stored route overrides.
func appRoutes(ctx context.Context, c *client.Controller, name string) ([]api.Route, error) {
	routes, err := c.Routes(ctx, name)
	if err != nil {
		return nil, err
	}
	app, err := c.App(ctx, name)
	if err != nil || app.URL == "" || app.Release == "" {
		return routes, err
	}
	u, err := url.Parse(app.URL)
	domain, ok := strings.CutPrefix(u.Hostname(), name+".")
	if err != nil || !ok {
		return routes, nil
	}
	rel, err := c.Release(ctx, name, app.Release)
	if err != nil {
		return nil, err
	}
	if _, ok := rel.Processes[router.WebProcess]; !ok {
		return routes, nil
	}
	auto := router.AppRoute(name, domain)
	for _, rt := range routes {
		if rt.Type == api.RouteHTTP && rt.Domain == auto.Domain && api.CanonicalPath(rt.Path) == "/" {
			return routes, nil // overridden
		}
	}
	return append([]api.Route{auto}, routes...), nil
}

func isAutoRoute(rt api.Route) bool { return strings.HasPrefix(rt.ID, "auto-") }

// routeOptions sums up a route's options for a table.
func routeOptions(rt api.Route) string {
	var o []string
	if isAutoRoute(rt) {
		o = append(o, "auto")
	}
	if rt.TLS != nil {
		o = append(o, "tls"+certExpiry(rt.TLS.CertPEM))
	}
	if rt.ACME {
		o = append(o, "acme")
	}
	if rt.RedirectHTTPS {
		o = append(o, "redirect-https")
	}
	if rt.Sticky {
		o = append(o, "sticky")
	}
	if rt.LeaderOnly {
		o = append(o, "leader-only")
	}
	if rt.DrainTimeout > 0 {
		o = append(o, "drain "+time.Duration(rt.DrainTimeout).String())
	}
	if len(o) == 0 {
		return "-"
	}
	return strings.Join(o, ", ")
}

// certExpiry is " until DATE" of a PEM certificate, or "" when it does
// not parse.
func certExpiry(certPEM string) string {
	block, _ := pem.Decode([]byte(certPEM))
	if block == nil {
		return ""
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return ""
	}
	return " until " + cert.NotAfter.UTC().Format(time.DateOnly)
}
