// Package pki holds the cluster's certificate authority and the join token.
//
// The first server of a cluster creates a CA; every etcd member, host agent
// and server gets a certificate signed by it, and etcd accepts clients only
// with such a certificate. A new node proves it may join with a token that
// carries the CA's fingerprint (so the node can verify the server it talks
// to before trusting it) and a secret (so the server can verify the node),
// as Docker Swarm's join tokens do. Keys and secrets are written with 0600
// permissions.
package pki
