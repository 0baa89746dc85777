//go:build linux

package cli_test

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pierpaas/pier/internal/testutil"
)

func TestHostRunInteractive(t *testing.T) {
	addr, dataDir := startRuncAgent(t)
	at := []string{"--host-addr", addr, "--data-dir", dataDir}
	runIn := func(stdin string, args ...string) result {
		t.Helper()
		cmd := exec.Command(pierBin, append(append([]string{"host", "run"}, at...), args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		res := result{stdout: out.String(), stderr: errOut.String()}
		if ee, ok := err.(*exec.ExitError); ok {
			res.code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return res
	}

	// echo hello | pier host run -i -- cat
	if res := runIn("hello\n", "-i", "--", "cat"); res.code != 0 || res.stdout != "hello\n" {
		t.Fatalf("run -i cat: %+v", res)
	}
	// Much input, in many frames; stdout and stderr apart; the exit code.
	big := strings.Repeat("0123456789abcdef", 20000) // 320000 bytes
	res := runIn(big, "-i", "--", "sh", "-c", "wc -c; echo to-stderr >&2; exit 6")
	if res.code != 6 || strings.TrimSpace(res.stdout) != "320000" || !strings.Contains(res.stderr, "to-stderr\n") {
		t.Fatalf("run -i wc: %+v", res)
	}
	// A job that cannot start: an error, not a hang.
	if res := runIn("x\n", "-i", "--", "/no/such/command"); res.code == 0 || !strings.Contains(res.stderr, "pier: job") {
		t.Fatalf("run -i of a missing command: %+v", res)
	}
	// Without -i and without a terminal, stdin is not the job's.
	if res := runIn("ignored\n", "--", "cat"); res.code != 0 || res.stdout != "" {
		t.Fatalf("run cat without -i: %+v", res)
	}
	// --tty wants a terminal; -d wants nobody attached.
	if res := runIn("", "--tty", "--", "true"); res.code == 0 || !strings.Contains(res.stderr, "not a terminal") {
		t.Fatalf("run --tty without a terminal: %+v", res)
	}
	if res := runIn("", "-d", "-i", "--", "true"); res.code == 0 || !strings.Contains(res.stderr, "cannot be combined") {
		t.Fatalf("run -d -i: %+v", res)
	}
}

// TestHostRunTTY runs `pier host run` on a pseudo-terminal, as a user at
// a terminal would: the job gets a terminal of its own, of the local
// window's size, following its changes; keys reach the job; the job's exit
// code is pier's; and the local terminal is back in its mode afterwards.
func TestHostRunTTY(t *testing.T) {
	addr, dataDir := startRuncAgent(t)
	master, slave := testutil.OpenPTY(t)
	setSize(t, master, 33, 77)
	before, err := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(pierBin, "host", "run", "--host-addr", addr, "--data-dir", dataDir, "--",
		"sh", "-c", `tty; stty size; read x; echo "got $x"; stty size; exit 4`)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()

	out := &testutil.SyncBuffer{}
	go io.Copy(out, master) // ends when the test closes the master
	waitFor(t, "the job's terminal size", func() bool { return strings.Contains(out.String(), "33 77") })
	setSize(t, master, 50, 120)
	cmd.Process.Signal(syscall.SIGWINCH) // what the kernel sends the foreground of a resized terminal
	time.Sleep(300 * time.Millisecond)
	if _, err := master.Write([]byte("go\r")); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != 4 {
			t.Fatalf("pier host run: %v, output %q", err, out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("pier host run did not end; output %q", out.String())
	}
	time.Sleep(100 * time.Millisecond) // the last output on its way through the pty
	got := out.String()
	if !strings.Contains(got, "/dev/pts/") || !strings.Contains(got, "got go\r\n") || !strings.Contains(got, "50 120") {
		t.Fatalf("output %q", got)
	}
	after, err := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	if after.Lflag != before.Lflag || after.Iflag != before.Iflag || after.Oflag != before.Oflag {
		t.Fatalf("terminal left changed: lflag %#x→%#x iflag %#x→%#x", before.Lflag, after.Lflag, before.Iflag, after.Iflag)
	}
}

// TestHostRunTTYInterrupted: in raw mode the keyboard's ^C is the job's;
// a signal to pier stops the job, pier exits 130, and the terminal is
// restored.
func TestHostRunTTYInterrupted(t *testing.T) {
	addr, dataDir := startRuncAgent(t)
	master, slave := testutil.OpenPTY(t)
	before, err := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(pierBin, "host", "run", "--host-addr", addr, "--data-dir", dataDir, "--",
		"sh", "-c", "trap 'echo got-int' INT; trap 'echo bye; exit 0' TERM; echo ready; while true; do sleep 0.1; done")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	out := &testutil.SyncBuffer{}
	go io.Copy(out, master)
	waitFor(t, "the job to start", func() bool { return strings.Contains(out.String(), "ready") })
	// ^C typed goes to the job's terminal, which sends the job SIGINT.
	if _, err := master.Write([]byte{3}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the job's SIGINT", func() bool { return strings.Contains(out.String(), "got-int") })
	// A signal to pier itself stops the job.
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != 130 {
			t.Fatalf("pier host run: %v, output %q", err, out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("pier host run did not end; output %q", out.String())
	}
	time.Sleep(100 * time.Millisecond)
	if got := out.String(); !strings.Contains(got, "stopping") || !strings.Contains(got, "bye") {
		t.Fatalf("output %q", got)
	}
	after, err := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	if after.Lflag != before.Lflag || after.Iflag != before.Iflag || after.Oflag != before.Oflag {
		t.Fatalf("terminal left changed: lflag %#x→%#x", before.Lflag, after.Lflag)
	}
}

func setSize(t *testing.T, master *os.File, rows, cols uint16) {
	t.Helper()
	if err := unix.IoctlSetWinsize(int(master.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: cols}); err != nil {
		t.Fatal(err)
	}
}
