package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The units pier service unit prints pass systemd's own check, run the
// daemon with its flags, and leave a host's jobs alone when it stops.
func TestServiceUnits(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for role, flags := range map[string][]string{
		"server": {"--advertise-ip", "10.0.0.1", "--data-dir", "/var/lib/pier"},
		"host":   {"--join", "10.0.0.1:7300", "--host-ip", "10.0.0.5"},
		"router": {"--join=10.0.0.1:7300", "--http-port", "80"},
		"up":     {"--domain", "apps.example.com", "--tag", "zone=a b"},
	} {
		unit, err := systemdUnit(exe, role, flags)
		if err != nil {
			t.Fatalf("%s: %v", role, err)
		}
		exec1 := "ExecStart=" + strings.Join(append([]string{exe, role}, flags...), " ") + "\n"
		exec1 = strings.Replace(exec1, "zone=a b", `"zone=a b"`, 1)
		if !strings.Contains(unit, exec1) || !strings.Contains(unit, "Restart=always\n") {
			t.Errorf("%s unit:\n%s", role, unit)
		}
		if keeps := strings.Contains(unit, "KillMode=process\n"); keeps != (role == "host" || role == "up") {
			t.Errorf("%s: KillMode=process %v", role, keeps)
		}
		path := filepath.Join(t.TempDir(), "pier-"+role+".service")
		if err := os.WriteFile(path, []byte(unit), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("systemd-analyze", "verify", path).CombinedOutput(); err != nil {
			t.Errorf("systemd-analyze verify %s: %v\n%s\n%s", role, err, out, unit)
		}
	}
	for _, bad := range []struct {
		role  string
		flags []string
		want  string
	}{
		{"shim", nil, "want server, host, router or up"},
		{"host", []string{"--jion", "x"}, "unknown flag: --jion"},
		{"host", []string{"extra"}, "flags only"},
		{"host", []string{"--token", "PIER1-x"}, "PIER_JOIN_TOKEN"},
		{"host", []string{"--token=PIER1-x"}, "PIER_JOIN_TOKEN"},
		{"host", []string{"--tag", "a=b\nExecStartPre=/bin/rm"}, "not allowed in a unit"},
	} {
		if _, err := systemdUnit(exe, bad.role, bad.flags); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%s %q: %v, want %q", bad.role, bad.flags, err, bad.want)
		}
	}
	if _, err := systemdUnit("pier", "host", nil); err == nil {
		t.Error("a relative binary was taken")
	}
}
