// Package join is the protocol by which a new server or host enters a
// cluster. The node presents a join token: it checks the server's
// certificate against the CA fingerprint in the token, sends the token's
// secret and a public key, and receives a certificate signed by the cluster
// CA together with the etcd endpoints. A server additionally receives the CA
// key and is added to etcd as a learner, so starting its member is all that
// is left to do. Nothing but the token has to be copied between machines.
package join
