package join

import (
	"errors"
	"fmt"
	"net"
	"regexp"
)

// Path is where servers serve the join endpoint.
const Path = "/v1/join"

// Request is what a joining node sends.
type Request struct {
	Secret string `json:"secret"`
	// Role is what the node joins as: "server" or "host". The secret must
	// be that role's.
	Role      string   `json:"role"`
	Name      string   `json:"name"`
	PublicKey []byte   `json:"public_key"` // PEM, PKIX
	DNSNames  []string `json:"dns_names,omitempty"`
	IPs       []string `json:"ips,omitempty"`
	// PeerURL is the etcd peer URL of a joining server.
	PeerURL string `json:"peer_url,omitempty"`
}

// Response is what a server answers.
type Response struct {
	Role          string   `json:"role"`
	CACert        []byte   `json:"ca_cert"`
	Cert          []byte   `json:"cert"`
	CAKey         []byte   `json:"ca_key,omitempty"`
	EtcdEndpoints []string `json:"etcd_endpoints"`
	// InitialCluster lets a joining server start its etcd member.
	InitialCluster string `json:"initial_cluster,omitempty"`
	// Secrets carries the cluster's join secrets to a joining server, so
	// every server hands out the same tokens.
	Secrets map[string]string `json:"secrets,omitempty"`
}

// Error is the JSON body of a refused join.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Errors a join can end with.
var (
	ErrUnauthorized = errors.New("join: the token is not this cluster's token for that role")
	ErrInvalid      = errors.New("join: invalid request")
	ErrBusy         = errors.New("join: cluster membership is changing, retry")
)

var (
	nameRE    = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)
	dnsNameRE = regexp.MustCompile(`^[a-z0-9.-]+$`)
)

// Validate checks a request's fields, not its secret.
func (r *Request) Validate() error {
	if len(r.Name) > 63 || !nameRE.MatchString(r.Name) {
		return fmt.Errorf("%w: node name %q must be lower-case letters, digits and dashes, at most 63", ErrInvalid, r.Name)
	}
	if len(r.PublicKey) == 0 || len(r.PublicKey) > 4096 {
		return fmt.Errorf("%w: missing or oversized public key", ErrInvalid)
	}
	if len(r.DNSNames) > 16 || len(r.IPs) > 16 {
		return fmt.Errorf("%w: too many names", ErrInvalid)
	}
	for _, ip := range r.IPs {
		if net.ParseIP(ip) == nil {
			return fmt.Errorf("%w: %q is not an IP address", ErrInvalid, ip)
		}
	}
	for _, n := range r.DNSNames {
		if len(n) > 253 || !dnsNameRE.MatchString(n) {
			return fmt.Errorf("%w: %q is not a DNS name", ErrInvalid, n)
		}
	}
	return nil
}
