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
// requests, and proxies with httputil.ReverseProxy over one shared
// transport. A backend that cannot be dialled is retried once on another
// when the request can be sent again; nothing is retried once it was sent.
//
// Start runs a router: it mirrors routes, apps and releases from the
// store with list+watch caches and rebuilds the whole table from them on
// every change (level triggered, so a coalesced or re-listed change is
// never lost), then swaps it into the proxy, which serves HTTP/1.1 and
// h2c. Every app whose current release has a web process gets the route
// "<app>.<cluster domain>" to its service "web.<app>" without one being
// stored (MergeRoutes); a stored route for the same domain and path wins.
package router
