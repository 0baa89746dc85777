package join

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/pierpaas/pier/internal/pki"
)

// Node says how a node that is not a server (a host agent, a router)
// joins the cluster.
type Node struct {
	Name      string
	IPs       []string
	PKIDir    string // where its credentials live
	StateFile string // where the etcd endpoints are kept between starts
	// Servers and Token are needed on the first start only.
	Servers []string
	Token   string
}

// nodeState is what a node keeps between starts besides its credentials.
type nodeState struct {
	Endpoints []string `json:"etcd_endpoints"`
}

// Joined returns the node's etcd endpoints: read back from its state on
// later starts, and on the first start got by joining the cluster with a
// host token, which also writes its credentials.
func Joined(ctx context.Context, n Node) ([]string, error) {
	var st nodeState
	if pki.HasCredentials(n.PKIDir) {
		b, err := os.ReadFile(n.StateFile)
		if err != nil {
			return nil, fmt.Errorf("join: %w", err)
		}
		if err := json.Unmarshal(b, &st); err != nil {
			return nil, fmt.Errorf("join: corrupt %s: %w", n.StateFile, err)
		}
		return st.Endpoints, nil
	}
	if len(n.Servers) == 0 || n.Token == "" {
		return nil, errors.New("first start needs --join SERVER and --token (pier token on a server)")
	}
	tok, err := pki.ParseToken(n.Token)
	if err != nil {
		return nil, err
	}
	resp, err := Join(ctx, n.Servers, tok, Request{Role: pki.RoleHost, Name: n.Name, IPs: n.IPs}, n.PKIDir)
	if err != nil {
		return nil, err
	}
	st.Endpoints = resp.EtcdEndpoints
	b, _ := json.Marshal(st)
	if err := pki.WriteFile(n.StateFile, b); err != nil {
		return nil, err
	}
	return st.Endpoints, nil
}
