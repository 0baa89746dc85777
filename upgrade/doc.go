// Package upgrade replaces the pier binary of every node of a cluster,
// one node at a time, and puts the old one back when a node fails (`pier
// cluster upgrade`). It is a loop over a record in the store, as the
// deployer is: the controller creates an api.Upgrade, the elected upgrade
// loop (loop.go) compares it with what the nodes report and orders one
// node at a time, and any server can take over from a dead one.
//
// Every daemon runs a Follower (follower.go): it describes itself under
// /pier/nodes/ (its binary's digest, version, the order it runs on
// probation), watches its order under /pier/node-orders/, checks the
// order's signature (a server's certificate), fetches the binary from the
// servers' blobstore by digest, puts it in place beside the old one and
// re-executes itself (same PID, so a supervisor and a host agent's shims
// notice nothing). A guard process of the old binary (guard.go) puts the
// old binary back and stops the node if the loop has not confirmed it
// healthy before its trial ends, so a binary that crashes or never
// becomes ready cannot keep a node down. The decisions are pure
// (plan.go, decide.go); I/O stays in the loop and the follower.
package upgrade
