// Package registry serves the OCI distribution API (pull, push with
// monolithic, chunked and streamed uploads, cross-repository mounts, tags
// list, referrers, deletes) on every server under /v2/. Blob and manifest
// bytes live in the blobstore, so the replicator copies them to every
// server; which blobs, manifests and tags belong to which repository lives
// in the store, so any server answers for a push made through another. One
// repository per app: a repository's name is its app's name. An upload in
// progress is a file on the server it started on, as with any registry
// behind one address.
package registry
