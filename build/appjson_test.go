package build

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// TestCompileAppJSON: the build reports app.json's text and says what it
// declares; a mistake in it fails the build before any buildpack runs,
// naming its line, and so does a reference to a process type the build
// did not find.
func TestCompileAppJSON(t *testing.T) {
	app := copyApp(t, filepath.Join(examplesDir(t), "appjson"))
	res, out := compileApp(t, app, t.TempDir())
	if !strings.Contains(res.AppJSON, `"schedule": "*/1 * * * *"`) {
		t.Fatalf("app.json in the result: %q", res.AppJSON)
	}
	if !strings.Contains(out, "-----> app.json declares cron-1 (*/1 * * * *), web health check GET /health, web=2") {
		t.Fatalf("output:\n%s", out)
	}

	for _, tc := range []struct{ manifest, want string }{
		{"{\n  \"cron\": [{\"command\": \"x\", \"schedule\": \"* * *\"}]\n}", "app.json line 2, column 29: cron[0].schedule: bad schedule"},
		{"{\n  \"formation\": {\"worker\": {\"quantity\": 1}}\n}", "app.json line 2, column 17: formation.worker: the app has no process type worker (it has web)"},
	} {
		bad := copyApp(t, filepath.Join(examplesDir(t), "appjson"))
		writeFiles(t, bad, map[string]string{"app.json": tc.manifest})
		var buf syncBuffer
		_, err := Compile(context.Background(), Options{AppDir: bad, CacheDir: t.TempDir(), Out: &buf, TempDir: t.TempDir()})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("Compile with %s: %v, want %q\n%s", tc.manifest, err, tc.want, buf.String())
		}
	}
}
