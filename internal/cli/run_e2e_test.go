package cli_test

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pierpaas/pier/internal/testutil"
)

// TestRunThroughTheController: `pier run` reaches the job through the
// controller, which relays the attachment to the host agent: stdin from a
// pipe, a terminal of its own when pier has one, and the exit code.
func TestRunThroughTheController(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	p := startUp(t, dataDir, freeUpPorts(t))
	u := cliUser{t, p}
	u.must("create", "tools")
	releaseApp(t, u, "tools")

	// Piped input, no terminal.
	cmd := exec.Command(pierBin, "run", "-a", "tools", "--", "sh", "-c", "tr a-z A-Z; exit 7")
	cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+p.configHome)
	cmd.Stdin = strings.NewReader("piped words\n")
	out, err := cmd.Output()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 7 || string(out) != "PIPED WORDS\n" {
		t.Fatalf("piped run: %v, %q", err, out)
	}

	// A terminal: the job gets one of its own, with pier's size.
	master, slave := testutil.OpenPTY(t)
	setSize(t, master, 33, 77)
	cmd = exec.Command(pierBin, "run", "-a", "tools", "--", "sh", "-c", `tty; stty size; read x; echo "got $x"; exit 4`)
	cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+p.configHome)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	term := &testutil.SyncBuffer{}
	go io.Copy(term, master)
	waitFor(t, "the job's terminal size", func() bool { return strings.Contains(term.String(), "33 77") })
	if _, err := master.Write([]byte("yes\r")); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.As(err, &ee) || ee.ExitCode() != 4 {
			t.Fatalf("pier run with a terminal: %v, output %q", err, term.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("pier run did not end; output %q", term.String())
	}
	time.Sleep(100 * time.Millisecond)
	if got := term.String(); !strings.Contains(got, "/dev/pts/") || !strings.Contains(got, "got yes") {
		t.Fatalf("output %q", got)
	}

	// --detach prints the id; ps shows the one-off.
	id := strings.TrimSpace(u.must("run", "-a", "tools", "--detach", "--", "sleep", "30"))
	waitUntil(t, "the detached job in ps", 20*time.Second, func() bool {
		return strings.Contains(u.must("ps", "-a", "tools"), id)
	})
	u.must("kill", "-a", "tools", id)
}
