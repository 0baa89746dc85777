// Package discovery is pier's service registry: processes register the
// instances they serve under a service name, each bound to an etcd lease
// the registering process keeps alive, so an instance vanishes when its
// owner dies or is cut off; others list and watch a service's instances
// (a watch resumes across etcd member failures and never repeats or drops
// a change), follow its leader (the oldest instance, which makes leader
// election fall out of registration: the next oldest takes over when the
// leader's key goes), share small compare-and-swap service metadata, and
// resolve instances over DNS through a server that answers from an
// in-memory view fed by a watch. It needs only an etcd client, so code
// outside pier can use it: it is the first piece of "the cluster is a
// library".
package discovery
