package api

import (
	"fmt"
	"time"
)

// Job networking (package host/jobnet): every job has a network namespace
// and an address of its own unless its process type opts into the host's
// network. The records below are the cluster's view of it.

// DefaultJobNetwork is the cluster range node subnets come from, and
// JobSubnetBits each node's share: 4096 nodes of 253 jobs each.
const (
	DefaultJobNetwork = "10.240.0.0/12"
	JobSubnetBits     = 24
)

// EnvAPIRelay tells a control-plane job (a build, a backup) where its host
// relays connections to the controller API: a job in its own network
// namespace cannot reach a server's address, the host's loopback least.
const EnvAPIRelay = "PIER_API_RELAY"

// InternalDomain is the DNS domain jobs resolve each other under:
// <process>.<app>.pier.internal, leader.<process>.<app>.pier.internal.
const InternalDomain = "pier.internal"

// NodeNetwork is a node's subnet of the cluster range and its address on
// the underlay, under /pier/net/nodes/<node>. Its node writes it once,
// allocated by a guarded transaction, and keeps it for good: a restarted
// node gets the same subnet, so running jobs keep their addresses.
type NodeNetwork struct {
	Node     string    `json:"node"`
	Subnet   string    `json:"subnet"`   // e.g. 10.240.7.0/24
	Underlay string    `json:"underlay"` // the node's own address
	Created  time.Time `json:"created"`
}

// Endpoint is a running job's address, under
// /pier/net/endpoints/<host>/<job>, written by the job's host agent while
// the job has its namespace: what network policy knows of other hosts'
// jobs.
type Endpoint struct {
	Job  string `json:"job"`
	App  string `json:"app"`
	IP   string `json:"ip"`
	Host string `json:"host"`
}

// AccessRule lets From's jobs open connections to App's jobs, under
// /pier/net/access/<app>/<from>. Users write them with `pier access
// allow`; the controller writes one per resource attachment (Resource
// names it), so that an app reaches its database and nothing else's.
type AccessRule struct {
	App       string    `json:"app"`
	From      string    `json:"from"`
	Resource  string    `json:"resource,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// Validate checks a rule's apps are names.
func (r *AccessRule) Validate() error {
	for _, n := range []string{r.App, r.From} {
		if err := ValidateAppName(n); err != nil {
			return err
		}
	}
	if r.App == r.From {
		return fmt.Errorf("an app's jobs always reach each other; %s needs no rule for itself", r.App)
	}
	return nil
}
