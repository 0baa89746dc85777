package artifact

import (
	"path"
	"strings"
)

// Pure name checks, kept apart from the file system code so the rules can be
// table-tested on their own. Tar names always use '/', so these work on the
// slash form; callers convert with filepath.FromSlash only at the edge.

// cleanName returns the cleaned, slash-separated form of an entry name
// relative to the destination ("." for the destination itself), or a reason
// it is unsafe. Absolute names are rejected rather than made relative (GNU
// tar strips the '/'): a slug is built by us from /app and never carries
// them, so one that does is malformed or hostile.
func cleanName(name string) (string, string) {
	switch {
	case name == "":
		return "", "empty name"
	case strings.IndexByte(name, 0) >= 0:
		return "", "NUL byte in name"
	case path.IsAbs(name):
		return "", "absolute path"
	}
	c := path.Clean(name)
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", "path escapes the destination"
	}
	return c, ""
}

// checkSymlinkTarget reports why a symlink at link (a cleaned name whose
// parents are real directories, never links) may not point at target, or ""
// if it may.
//
// A lexical check of path.Join(dir, target) is not enough: path.Clean folds
// "s/../x" to "x", but the kernel resolves s first, and if s is a link to
// "." the ".." then leaves the tree. So '..' is allowed only as a leading
// run. With that rule and parents that are real directories, the climb stays
// inside the destination, and every later component only descends, either
// into a real directory or through another link that was checked the same
// way; by induction every link in the tree resolves inside it.
//
// Absolute targets are rejected, not rewritten: they would mean something
// different inside the container (/app/...) than on the host, and buildpacks
// can always write relative links.
func checkSymlinkTarget(link, target string) string {
	switch {
	case target == "":
		return "empty symlink target"
	case strings.IndexByte(target, 0) >= 0:
		return "NUL byte in symlink target"
	case path.IsAbs(target):
		return "absolute symlink target"
	}
	depth := 0
	if dir := path.Dir(link); dir != "." {
		depth = strings.Count(dir, "/") + 1
	}
	ups, descended := 0, false
	for _, c := range strings.Split(target, "/") {
		switch c {
		case "", ".":
		case "..":
			if descended {
				return "'..' after a name in symlink target"
			}
			ups++
		default:
			descended = true
		}
	}
	if ups > depth {
		return "symlink target escapes the destination"
	}
	return ""
}

// ValidDigest reports whether s is a sha256 digest as pier records it: 64
// lowercase hex digits, no "sha256:" prefix. Fetch uses the digest as a
// directory name, so anything else (a '/', "..", an upper-case twin of a
// cached digest) must never reach the file system.
func ValidDigest(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
