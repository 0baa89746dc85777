package cli_test

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestAppJSONAddons: an app whose app.json asks for heroku-postgresql
// gets a PostgreSQL resource on its first deploy, attached before the
// deploy ends, so the app runs with DATABASE_URL and its postdeploy
// script sees it, as on Heroku; a later deploy provisions nothing more.
// An add-on pier does not provide fails the deploy at its line.
func TestAppJSONAddons(t *testing.T) {
	p := startUp(t, filepath.Join(t.TempDir(), "data"), freeUpPorts(t))
	u := cliUser{t, p}
	u.must("create", "shop")
	manifest := `{
  "addons": ["heroku-postgresql:essential-0"],
  "scripts": {"postdeploy": "sh -c 'echo postdeploy sees ${DATABASE_URL%%:*}'"}
}
`
	dir := writeApp(t, "web: python3 -m http.server $PORT\n", map[string]string{"index.html": "shop\n", "app.json": manifest})
	out, errOut, code := u.run("deploy", "-a", "shop", dir)
	all := out + errOut
	if code != 0 || !strings.Contains(all, "Provisioning postgres-") || !strings.Contains(all, "attached as DATABASE_URL") ||
		!strings.Contains(all, "postdeploy sees postgres\n") {
		t.Fatalf("first deploy with an add-on: exit %d\n%s", code, all)
	}
	if env := u.must("config:get", "DATABASE_URL", "-a", "shop"); !strings.HasPrefix(env, "postgres://") {
		t.Fatalf("DATABASE_URL: %q", env)
	}
	if code, body, err := get(p, "shop", "/index.html"); code != 200 || body != "shop\n" {
		t.Fatalf("the app through the router: %d %q %v", code, body, err)
	}
	// The next deploy: the same database, nothing new.
	if out, errOut, code := u.run("deploy", "-a", "shop", dir); code != 0 || strings.Contains(out+errOut, "Provisioning") {
		t.Fatalf("second deploy: exit %d\n%s%s", code, out, errOut)
	}
	if out := u.must("resources"); strings.Count(out, "\npostgres-") != 1 {
		t.Fatalf("resources after two deploys:\n%s", out)
	}

	u.must("create", "other")
	bad := writeApp(t, "web: python3 -m http.server $PORT\n", map[string]string{"index.html": "x\n",
		"app.json": "{\n  \"addons\": [\"papertrail\"]\n}\n"})
	u.fails(`app.json line 2, column 3: addons: add-on "papertrail"`, "deploy", "-a", "other", bad)
}
