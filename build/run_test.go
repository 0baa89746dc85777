package build

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

func TestSlugArgs(t *testing.T) {
	got := SlugArgs("bin/web --port $PORT")
	if !slices.Equal(got, []string{"/.pier/pier", "slugrun", "--", "bin/web --port $PORT"}) {
		t.Errorf("SlugArgs = %q", got)
	}
}

// runSlug runs command as RunSlug would for an app in appDir and returns
// its output.
func runSlug(t *testing.T, appDir, command string, environ []string) string {
	t.Helper()
	argv, env := slugExec(appDir, command, environ)
	if argv[2] != slugPrelude {
		t.Fatalf("the prelude is not the constant script: %q", argv[2])
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir, cmd.Env = appDir, env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%q: %v\n%s", command, err, out)
	}
	return string(out)
}

func TestSlugRunEnvironment(t *testing.T) {
	app := t.TempDir()
	writeFiles(t, app, map[string]string{
		".profile.d/a.sh":    "export FROM_PROFILE_D=a\nexport ORDER=a\n",
		".profile.d/b.sh":    "export ORDER=\"$ORDER b\"\n",
		".profile.d/c.txt":   "export NOT_SOURCED=1\n", // only *.sh
		".profile":           "export ORDER=\"$ORDER profile\"\n",
		"bin/tool":           "#!/bin/sh\necho tool ran\n",
		".profile.d/path.sh": "export PATH=\"$HOME/bin:$PATH\"\n",
	})
	env := []string{"PATH=/usr/bin:/bin", "PORT=5123", "PIER_PROCESS_TYPE=worker", "PIER_JOB_ID=j42", "PIER_APP=hello", "HOME=/root"}
	out := runSlug(t, app, `echo "home=$HOME port=$PORT dyno=$DYNO app=$PIER_APP pd=$FROM_PROFILE_D order=$ORDER ns=${NOT_SOURCED:-no} pwd=$(pwd)"; tool`, env)
	want := "home=" + app + " port=5123 dyno=worker.j42 app=hello pd=a order=a b profile ns=no pwd=" + app + "\ntool ran\n"
	if out != want {
		t.Errorf("got  %q\nwant %q", out, want)
	}
}

// The command is shell text, evaluated after the prelude: quotes,
// operators and a leading assignment work as in a Procfile, and a command
// that tries to end the prelude's quoting has no special power.
func TestSlugRunCommandIsAnArgument(t *testing.T) {
	app := t.TempDir()
	for cmd, want := range map[string]string{
		`echo 'a  b' "$((1+2))" && echo second`: "a  b 3\nsecond\n",
		`GREETING=hi sh -c 'echo $GREETING'`:    "hi\n",
		`echo "x"; exit 0`:                      "x\n",
		`echo '"; echo injected; "'`:            "\"; echo injected; \"\n",
	} {
		if got := runSlug(t, app, cmd, []string{"PATH=/usr/bin:/bin"}); got != want {
			t.Errorf("%s: got %q, want %q", cmd, got, want)
		}
	}
	// No PATH at all still finds the usual programs.
	if got := runSlug(t, app, "echo ok", nil); got != "ok\n" {
		t.Errorf("without PATH: %q", got)
	}
	if _, env := slugExec(app, "x", []string{"PIER_PROCESS_TYPE=web"}); strings.Contains(strings.Join(env, " "), "DYNO=") {
		t.Errorf("DYNO set without a job id: %q", env)
	}
}
