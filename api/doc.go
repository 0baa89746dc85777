// Package api holds the wire types that servers, host agents, schedulers
// and clients share: the objects of DESIGN.md's object model as they are
// stored in etcd (JSON) and sent over HTTP. Layer 0 types (Host, Job,
// JobStatus) know nothing of apps; the app, release and process type on a
// job are labels that layer 1 sets and layer 0 only carries.
package api
