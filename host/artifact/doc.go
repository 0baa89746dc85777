// Package artifact turns an artifact record (URI + sha256) into a directory
// on the host that a container can mount at /app. Fetch downloads the archive
// once per digest, verifies it before a single byte of it is parsed, and
// caches the extracted tree under its digest; Extract unpacks a gzipped (or
// plain) tar without trusting it: every entry is confined to the destination
// with os.Root, path escapes, outward or absolute links, writes through
// links, device nodes and FIFOs are rejected, setuid/setgid/sticky bits are
// stripped, sizes and counts are bounded, and the result appears atomically
// (a temp directory renamed into place) or not at all. Slugs are built from
// untrusted user code, so a slug is treated as hostile input even after its
// digest matches: the digest proves it is the artifact the controller
// released, not that the artifact is benign.
package artifact
