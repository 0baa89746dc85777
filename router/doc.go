// Package router is pier's ingress: it takes public HTTP, HTTPS and TCP
// traffic and sends it to the healthy instances of the service a route
// names (DESIGN.md, "Router"). Its route table (Table) is pure and
// immutable: built from the controller's routes (api.Route, stored under
// /pier/routes/), it answers which route a host and path, or a TCP port,
// belong to, without allocating. The proxy keeps the current table behind
// an atomic.Pointer and swaps in a whole new one when routes change, so a
// request always sees one consistent table and the router never restarts.
// Precedence: an exact domain beats a wildcard ("*.example.com" matches
// exactly one label in place of the "*", as a TLS wildcard certificate
// does, so "a.b.example.com" needs "*.b.example.com"); within a domain the
// longest path prefix wins, matched on segment boundaries.
//
// Proxy is the HTTP handler: it looks the request up in the current
// table, picks a backend of the route's service from Backends (kept from
// discovery watches that start on a service's first request and stop when
// no route names it) by the power of two random choices on in-flight
// requests, and proxies the request. Bodiless HTTP/1.x GETs and HEADs
// (nearly all of an app's traffic) take the direct path (fastpath.go):
// the request head is written to a pooled backend connection and the
// answer read back on the handler's goroutine. Everything else goes
// through httputil.ReverseProxy over one shared transport. A backend
// that cannot be dialled is retried once on another, body and all, since
// a failed dial sent nothing; nothing is retried once any of it was sent.
//
// The plain-HTTP port has a server of its own (h1server.go) in front of
// net/http's: it reads request heads in place from the connection's
// buffer, and proxies the GETs and HEADs it understands whole over the
// direct path's connections; anything else it hands, connection and
// bytes already read, to net/http's server. The HTTPS port is net/http's.
//
// Per-route options act in the proxy. RedirectHTTPS answers plain HTTP
// with a 308 to the HTTPS listener. Sticky pins a client to an instance
// with a cookie signed by HMAC-SHA256 (Config.StickyKey, which routers
// sharing traffic must share); a tampered cookie, or one naming an
// instance discovery no longer lists, is ignored and replaced.
// LeaderOnly sends traffic only to the service's discovery leader, which
// Backends follows from the watch's leader events, and never to a
// follower, not even as a retry. When a route leaves the table, its
// requests in flight finish, and its upgraded connections (websockets)
// are closed after its DrainTimeout.
//
// HTTPS picks each handshake's certificate by SNI from the current
// table; certificates are parsed when a table is installed (reused while
// a route's PEM is unchanged), never per handshake, and names without one
// go to a GetCertificate hook (ACME) or fail with "unrecognized_name".
// Every request can be logged as one JSON line (Config.AccessLog) and
// counted in Prometheus metrics per route (Config.Registry).
//
// Start runs a router: it mirrors routes, apps and releases from the
// store with list+watch caches and rebuilds the whole table from them on
// every change (level triggered, so a coalesced or re-listed change is
// never lost), then swaps it into the proxy, which serves HTTP/1.1 and
// h2c, and on HTTPSAddr HTTP/2 and HTTP/1.1 over TLS. Every app whose
// current release has a web process gets the route
// "<app>.<cluster domain>" to its service "web.<app>" without one being
// stored (MergeRoutes); a stored route for the same domain and path wins.
package router
