// Package testcluster runs a whole cluster inside one test process: real
// embedded etcd, any number of host agents on the fake runtime, and any
// number of scheduler loops. Tests of the layers above layer 0 (the
// scheduler, the controller) drive it through the store as the real
// components would, and inject failures: a host's lease expiring, a
// scheduler leader stopping.
package testcluster
