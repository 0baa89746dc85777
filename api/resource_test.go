package api

import (
	"strings"
	"testing"
)

func TestParseSizeMB(t *testing.T) {
	for in, want := range map[string]int64{"300": 300, "512M": 512, "512MB": 512, "10G": 10240, "10g": 10240, "1GiB": 1024, "1T": 1 << 20, "4T": 4 << 20} {
		if got, err := ParseSizeMB(in); err != nil || got != want {
			t.Errorf("ParseSizeMB(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "lots", "0", "-1G", "5T", "1.5G", "G"} {
		if got, err := ParseSizeMB(in); err == nil {
			t.Errorf("ParseSizeMB(%q) = %d; want an error", in, got)
		}
	}
}

func TestValidateResourceName(t *testing.T) {
	for _, ok := range []string{"db", "main-db", "a1", strings.Repeat("a", 56)} {
		if err := ValidateResourceName(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "Bad_Name", "-db", "db-", "a--b", "a.b", strings.Repeat("a", 57)} {
		if err := ValidateResourceName(bad); err == nil {
			t.Errorf("%q passes", bad)
		}
	}
}
