// Package blobstore is pier's content-addressed artifact storage: slugs and
// other release artifacts are stored on the server's local disk under their
// SHA-256 digest, written to a temporary file while being hashed and renamed
// into place only once the digest is known to be right, so a reader never sees
// a partial or wrong blob and a second upload of the same bytes is a no-op.
// Handler exposes the store over authenticated HTTP (PUT, GET and HEAD with
// range requests, DELETE), and GC removes blobs that no kept release
// references; the controller decides what "kept" means, the store only
// applies it.
package blobstore
