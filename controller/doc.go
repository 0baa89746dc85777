// Package controller is pier's management API (DESIGN.md, layer 1): the
// JSON-over-HTTP interface through which the CLI, the dashboard and any
// program create apps, store releases, scale formations, change config,
// roll back, run one-off commands, route domains and ports to apps and
// follow events. It runs on every server and keeps no state of its own:
// every request reads and writes the store (etcd) with guarded
// transactions, so any server answers any request and two servers never
// lose each other's writes. Handler wraps every endpoint in the same
// edges: a request id, API-key authentication (keys live hashed in the
// store, so a new key works on every server at once and an old one can be
// revoked after clients moved: rotation without downtime), bounded
// bodies, and errors with a stable code. Releases are handed to the
// deployer (controller/deployer) as deployments; jobs are placed by the
// scheduler, never by the controller.
package controller
