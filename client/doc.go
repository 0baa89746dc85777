// Package client is the Go library for programs that work with a pier
// cluster from outside: it connects to the cluster's store with a node's
// credentials and hands out the discovery registry, so a program can
// register services, watch them and elect leaders exactly as pier's own
// daemons do. Clients for the controller and host APIs will join it.
package client
