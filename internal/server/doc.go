// Package server runs the server role: an embedded etcd member (or a client
// of an external etcd cluster), the join endpoint that admits new servers
// and hosts, the DNS face of discovery, and the health and metrics
// endpoints. The first server of a cluster creates the cluster CA and the
// join tokens; later servers join with a token and become etcd members,
// first as learners, then voters. Everything it needs to restart lives in
// its data directory, so a restart on the same directory resumes the member
// with all its data. Leader-elected loops (scheduler, deployer) and the
// controller API will hang off this role.
package server
