// Package replica keeps a copy of every blob the cluster still needs on
// every server, so that losing the server a slug was uploaded to loses
// nothing: hosts fetch it from another server, and a release can be
// created through any server.
//
// Each server pulls from its peers (listed in discovery under
// api.ServersService), over their authenticated blob endpoints, the blobs it
// lacks: the kept ones, whenever releases or builds change and on a
// timer (Run), and any one a client asks it for (Fetch, the read-through
// of the blob endpoint). A peer's request carries LocalOnlyHeader, so a
// server asked by a peer answers from its own disk and never asks on in
// turn. Blobs are content-addressed and verified as they are stored, so
// a copy is the blob or nothing.
package replica
