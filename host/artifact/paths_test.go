package artifact

import (
	"strings"
	"testing"
)

func TestCleanName(t *testing.T) {
	for _, tc := range []struct{ in, want, why string }{
		{"a", "a", ""},
		{"./a/b/", "a/b", ""},
		{"a//b/./c", "a/b/c", ""},
		{"a/../b", "b", ""},
		{"./", ".", ""},
		{"", "", "empty"},
		{"/etc/passwd", "", "absolute"},
		{"..", "", "escapes"},
		{"../x", "", "escapes"},
		{"a/../../x", "", "escapes"},
		{"a/\x00", "", "NUL"},
		{"..x/y", "..x/y", ""},
	} {
		got, why := cleanName(tc.in)
		if got != tc.want || !strings.Contains(why, tc.why) || (tc.why == "") != (why == "") {
			t.Errorf("cleanName(%q) = %q, %q; want %q, %q", tc.in, got, why, tc.want, tc.why)
		}
	}
}

func TestCheckSymlinkTarget(t *testing.T) {
	for _, tc := range []struct{ link, target, why string }{
		{"l", "x", ""},
		{"l", ".", ""},
		{"l", "./a/b", ""},
		{"a/l", "..", ""},
		{"a/b/l", "../../x", ""},
		{"a/b/l", "../..//./x/y", ""},
		{"l", "..", "escapes"},
		{"l", "../x", "escapes"},
		{"a/l", "../../x", "escapes"},
		{"a/b/l", "../../../", "escapes"},
		{"l", "/etc", "absolute"},
		{"l", "", "empty"},
		{"l", "s/../x", "after a name"},
		{"a/l", "x/../../y", "after a name"},
		{"l", "x\x00", "NUL"},
	} {
		why := checkSymlinkTarget(tc.link, tc.target)
		if !strings.Contains(why, tc.why) || (tc.why == "") != (why == "") {
			t.Errorf("checkSymlinkTarget(%q, %q) = %q, want %q", tc.link, tc.target, why, tc.why)
		}
	}
}

func TestValidDigest(t *testing.T) {
	good := strings.Repeat("0123456789abcdef", 4)
	if !ValidDigest(good) {
		t.Errorf("ValidDigest(%q) = false", good)
	}
	for _, bad := range badDigests() {
		if ValidDigest(bad) {
			t.Errorf("ValidDigest(%q) = true", bad)
		}
	}
}

func badDigests() []string {
	good := strings.Repeat("0123456789abcdef", 4)
	return []string{
		"",
		"abc",
		strings.ToUpper(good),
		"sha256:" + good,
		good + "0",
		good[:63],
		"../" + good[3:],
		good[:30] + "/" + good[31:],
		good[:63] + "g",
		good[:63] + "\x00",
		strings.Repeat(".", 64),
	}
}
