// Package daemon holds the plumbing every long-running pier process shares,
// so that the server, host and router roles look the same to an operator:
// one way to build the structured logger (text on a terminal, JSON
// everywhere else so log shippers need no parsing rules), one ops HTTP
// handler serving /livez, /readyz and Prometheus /metrics, and one place to
// register the readiness checks that decide whether a load balancer or a
// supervisor should send the process work. It knows nothing about etcd,
// jobs or apps; the roles plug their own checks and collectors into it.
package daemon
