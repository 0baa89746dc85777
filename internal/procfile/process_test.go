package procfile

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pierpaas/pier/api"
)

func TestProcessTypes(t *testing.T) {
	pf := Procfile{"web": "./server -p $PORT", "worker": "./work", "release": "./migrate && ./seed"}
	pts := ProcessTypes("hello", pf)
	if len(pts) != 3 {
		t.Fatalf("%d process types, want 3", len(pts))
	}
	web := pts["web"]
	if got := strings.Join(web.Args, "|"); got != "/bin/sh|-c|exec ./server -p $PORT" {
		t.Fatalf("web args %q", web.Args)
	}
	if len(web.Ports) != 1 || web.Ports[0].Proto != "http" || web.Ports[0].Service != "web.hello" ||
		web.Ports[0].Service != api.ServiceName("hello", "web") ||
		web.Ports[0].Health == nil || web.Ports[0].Health.Kind != "tcp" {
		t.Fatalf("web ports %+v", web.Ports)
	}
	if web.RestartPolicy() != api.RestartAlways {
		t.Fatalf("web restart %q", web.Restart)
	}
	rel := pts[api.ReleaseProcess]
	if got := strings.Join(rel.Args, "|"); got != "/bin/sh|-c|./migrate && ./seed" {
		t.Fatalf("release args %q", rel.Args)
	}
	if rel.Restart != api.RestartNever || len(rel.Ports) != 0 {
		t.Fatalf("release %+v; want RestartNever and no ports", rel)
	}
	worker := pts["worker"]
	if len(worker.Ports) != 0 || worker.Restart != "" || strings.Join(worker.Args, "|") != "/bin/sh|-c|exec ./work" {
		t.Fatalf("worker %+v", worker)
	}
	r := api.Release{ID: "hello-v1", App: "hello", Version: 1, Processes: pts}
	if err := r.Validate(); err != nil {
		t.Fatalf("release with these process types: %v", err)
	}
	if len(ProcessTypes("hello", Procfile{})) != 0 {
		t.Fatal("empty Procfile gave process types")
	}
}

func TestCommand(t *testing.T) {
	for _, tc := range []struct {
		cmd  string
		exec bool
	}{
		{"./server", true},
		{"bundle exec puma -C config/puma.rb -p $PORT", true},
		{"node server.js --port=${PORT:-5000}", true},
		{`gunicorn app:app --bind "0.0.0.0:$PORT" --workers "$(nproc)"`, true},
		{"java -Xmx300m -jar target/app.jar >>log 2>&1", true},
		{"./server 1>&2 <&0", true},
		{"./server # listens on $PORT", true},
		{`python -c 'import a; a.run() | b'`, true},
		{`echo "a;b" \; c`, true},
		{"env FOO=bar ./server", true},
		{"/usr/bin/time -v ./server", true},

		{"cd web && node server.js", false},
		{"./migrate; ./serve", false},
		{"./a || ./b", false},
		{"./a | ./b", false},
		{"./a &", false},
		{"./a &>log", false},
		{"(cd web; ./server)", false},
		{"{ ./server; }", false},
		{"PORT=5001 ./server", false},
		{"_X1=a ./server", false},
		{">log ./server", false},
		{"2>err PORT=1 ./server", false},
		{"exec ./server", false},
		{"exec", false},
		{"ulimit -n 4096", false},
		{". ./env.sh", false},
		{"source env.sh", false},
		{"if true; then ./a; fi", false},
		{"while :; do ./a; done", false},
		{"! ./a", false},
		{"time ./a", false},
		{"'c'd /tmp", false},
		{`"./my server" -p 1`, false},
		{"./server --workers $(nproc)", false},
		{"./server --workers `nproc`", false},
		{"./server $((2*2))", false},
		{"./server 'unterminated", false},
		{"", false},
		{"   ", false},
	} {
		want := tc.cmd
		if tc.exec {
			want = "exec " + tc.cmd
		}
		if got := Command(tc.cmd); got != want {
			t.Errorf("Command(%q) = %q, want %q", tc.cmd, got, want)
		}
	}
}

// TestCommandMeaningKept runs commands under a real sh both as written and
// as Command rewrites them: exec must never change what they print or how
// they exit.
func TestCommandMeaningKept(t *testing.T) {
	if _, err := os.Stat(Shell); err != nil {
		t.Skip("no", Shell)
	}
	dir := t.TempDir()
	for _, cmd := range []string{
		`echo "port=$PORT"`,
		`printf '%s\n' a "b c" 'd;e'`,
		`sh -c 'echo inner; exit 3'`,
		`env FOO=bar sh -c 'echo $FOO'`,
		`sh -c 'echo out; echo err >&2' 2>&1`,
		`echo x # comment; echo y`,
		`echo a; echo b`,
		`cd / && pwd`,
		`FOO=bar sh -c 'echo $FOO'`,
		`false || echo recovered`,
		`echo piped | tr a-z A-Z`,
		`(echo sub; exit 4)`,
		`no-such-program-pier-test`,
	} {
		run := func(script string) (string, int) {
			c := exec.Command(Shell, "-c", script)
			c.Dir = dir
			c.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "PORT=5000"}
			out, err := c.CombinedOutput()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			// sh names itself in "not found" messages differently with exec.
			return strings.ReplaceAll(string(out), "exec: ", ""), code
		}
		wantOut, wantCode := run(cmd)
		gotOut, gotCode := run(Command(cmd))
		if gotCode != wantCode || (gotOut != wantOut && wantCode != 127) {
			t.Errorf("%q: as written %q exit %d; as %q: %q exit %d", cmd, wantOut, wantCode, Command(cmd), gotOut, gotCode)
		}
	}
}

// TestExecDeliversSIGTERM checks the point of exec: the app is the process
// the runtime started, so the runtime's SIGTERM reaches the app's handler.
func TestExecDeliversSIGTERM(t *testing.T) {
	if _, err := os.Stat(Shell); err != nil {
		t.Skip("no", Shell)
	}
	pts := ProcessTypes("hello", Procfile{"worker": `sh -c 'trap "echo got TERM; exit 0" TERM; echo $$; while :; do sleep 0.02; done'`})
	args := pts["worker"].Args
	c := exec.Command(args[0], args[1:]...)
	stdout, err := c.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer c.Process.Kill()
	sc := bufio.NewScanner(stdout)
	if !sc.Scan() {
		t.Fatal("no output")
	}
	if pid, _ := strconv.Atoi(sc.Text()); pid != c.Process.Pid {
		t.Fatalf("app runs as pid %s, started process is %d: exec did not replace sh", sc.Text(), c.Process.Pid)
	}
	if err := c.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	var rest bytes.Buffer
	done := make(chan error, 1)
	go func() {
		for sc.Scan() {
			rest.WriteString(sc.Text() + "\n")
		}
		done <- c.Wait()
	}()
	select {
	case err := <-done:
		if err != nil || !strings.Contains(rest.String(), "got TERM") {
			t.Fatalf("after SIGTERM: %v, output %q; want the app's handler to run", err, rest.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the app did not stop on SIGTERM")
	}
}
