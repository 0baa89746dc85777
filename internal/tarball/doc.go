// Package tarball packs an app's source directory into the gzipped tar
// that `pier` uploads as an artifact, and draws the upload's progress.
// The archive is built to be accepted by host/artifact.Extract, which
// trusts nothing: only regular files, directories and symlinks that stay
// inside the tree, with relative names; anything else (sockets, devices,
// FIFOs, links leading out) is skipped with a warning, so the user learns
// at `pier deploy` rather than from a rejected job. Output is deterministic
// (sorted walk, no owners, mtimes to the second) so that the same tree
// gives the same bytes, and thus the same content address, twice.
package tarball
