package cli

import (
	"slices"
	"testing"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/build"
)

// pier init runs the slug runner's command itself, and only for the
// exact command line the controller writes.
func TestSlugInitCommand(t *testing.T) {
	cmd, ok := slugInitCommand(build.SlugArgs("web --port $PORT"))
	if !ok || cmd.Dir != build.SlugDir || len(cmd.Args) < 3 || cmd.Args[0] != "/bin/bash" ||
		cmd.Args[len(cmd.Args)-1] != "exec web --port $PORT" {
		t.Errorf("slugInitCommand(slugrun) = %+v, %v; want the slug runner's bash in /app", cmd, ok)
	}
	if !slices.Contains(cmd.Env, "HOME="+build.SlugDir) {
		t.Errorf("env %q has no HOME=/app", cmd.Env)
	}
	for _, argv := range [][]string{
		{"sh", "-c", "x"},
		{api.PierBinary, "slugbuild"},
		{api.PierBinary, "slugrun", "x"},
		{"/elsewhere/pier", "slugrun", "--", "x"},
	} {
		if cmd, ok := slugInitCommand(argv); ok {
			t.Errorf("slugInitCommand(%q) = %+v, want it left alone", argv, cmd)
		}
	}
}
