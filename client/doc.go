// Package client is the Go library for programs that work with a pier
// cluster from outside. Controller is the management API's client (apps,
// releases, config, scaling, jobs, one-off commands with attach, events,
// API keys), authenticated with an API key: what the CLI is built on.
// HostClient talks to one host agent with a node's certificate. Connect
// reaches the cluster's store with a node's credentials and hands out the
// discovery registry, so a program can register services, watch them and
// elect leaders exactly as pier's own daemons do.
package client
