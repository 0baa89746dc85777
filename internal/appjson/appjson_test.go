package appjson

import (
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pierpaas/pier/api"
)

const full = `{
  "name": "clock",
  "description": "a web process, a cron job and placement",
  "keywords": ["python"],
  "env": {"SECRET": {"value": "x"}},
  "formation": {"web": {"quantity": 2}, "worker": {"quantity": 0}},
  "scripts": {"predeploy": "python3 migrate.py", "postdeploy": "python3 seed.py",
              "dokku": {"postdeploy": "echo deployed"}},
  "cron": [
    {"command": "echo tick", "schedule": "*/1 * * * *"},
    {"command": "python3 report.py", "schedule": "@daily", "concurrency_policy": "forbid"}
  ],
  "healthchecks": {
    "web": [
      {"type": "startup", "name": "ready", "path": "/health", "attempts": 3, "wait": 2, "timeout": 5, "initialDelay": 1},
      {"type": "liveness", "path": "/health", "attempts": 3}
    ]
  },
  "pier": {"processes": {"worker": {"tags": {"disk": "ssd"}, "max_per_host": 1, "memory_mb": 256}}}
}
`

func TestParseGood(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		check      func(t *testing.T, m *Manifest)
	}{
		{"empty object", `{}`, func(t *testing.T, m *Manifest) {
			if m.Summary() != "nothing pier acts on" || len(m.Quantities()) != 0 {
				t.Errorf("summary %q, quantities %v", m.Summary(), m.Quantities())
			}
		}},
		{"byte order mark and nulls", "\ufeff{\"cron\": null, \"name\": null}", nil},
		{"heroku descriptive keys", `{"name": "x", "website": "https://x", "logo": "https://x/l.png", "success_url": "/", "repository": "https://x.git"}`, func(t *testing.T, m *Manifest) {
			if len(m.Warnings()) != 0 {
				t.Errorf("warnings %q", m.Warnings())
			}
		}},
		{"full", full, func(t *testing.T, m *Manifest) {
			if w := m.Warnings(); len(w) != 1 || !strings.Contains(w[0], "line 5, column 3: env is not used by pier: set config vars with pier env set") {
				t.Errorf("warnings %q", w)
			}
			if q := m.Quantities(); !maps.Equal(q, map[string]int{"web": 2, "worker": 0, "cron-1": 1, "cron-2": 1}) {
				t.Errorf("quantities %v", q)
			}
			hc := m.HealthCheck("web")
			want := api.HealthCheck{Kind: "http", Path: "/health", Threshold: 3, Interval: api.Duration(2 * time.Second),
				Timeout: api.Duration(5 * time.Second), StartGrace: api.Duration(time.Second)}
			if hc == nil || *hc != want {
				t.Errorf("health check %+v, want %+v", hc, want)
			}
			if got := m.Postdeploy(true); !slices.Equal(got, []string{"python3 seed.py", "echo deployed"}) {
				t.Errorf("first postdeploy %q", got)
			}
			if got := m.Postdeploy(false); !slices.Equal(got, []string{"echo deployed"}) {
				t.Errorf("later postdeploy %q", got)
			}
		}},
		{"dokku predeploy", `{"scripts": {"dokku": {"predeploy": "make assets"}}}`, func(t *testing.T, m *Manifest) {
			if m.predeploy() != "make assets" {
				t.Errorf("predeploy %q", m.predeploy())
			}
		}},
		{"healthcheck without path is tcp", `{"healthchecks": {"web": [{"attempts": 5}]}}`, func(t *testing.T, m *Manifest) {
			if hc := m.HealthCheck("web"); hc.Kind != "tcp" || hc.Threshold != 5 {
				t.Errorf("health check %+v", hc)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Parse([]byte(tc.text))
			if err != nil {
				t.Fatal(err)
			}
			if tc.check != nil {
				tc.check(t, m)
			}
		})
	}
}

func TestParseBad(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		want       string // the whole message
	}{
		{"empty", "  \n", "app.json line 1, column 1: the file is empty: want a JSON object, {} at least"},
		{"not an object", "\n[1]", "app.json line 2, column 1: want a JSON object ({ ... }) at the top"},
		{"syntax", "{\n  \"cron\": [\n    {\"command\": \"x\",}\n  ]\n}", "app.json line 3, column 21: invalid character '}' looking for beginning of object key string"},
		{"unclosed", "{\n  \"cron\": [\n", "app.json line 3, column 1: unexpected end of the file: a bracket or quote is not closed"},
		{"trailing", "{}\n{}", "app.json line 2, column 1: more after the closing }"},
		{"unknown key", "{\n  \"formation\": {},\n  \"crons\": []\n}",
			"app.json line 3, column 3: crons: unknown key (known here: addons, buildpacks, cron, description, env, environments, formation, healthchecks, image, keywords, logo, name, pier, repository, scripts, stack, success_url, website)"},
		{"keys are case-sensitive", `{"Cron": []}`, "app.json line 1, column 2: Cron: unknown key"},
		{"duplicate key", "{\"cron\": [],\n \"cron\": []}", "app.json line 2, column 2: cron: the key appears twice"},
		{"unsupported dokku key", `{"formation": {"web": {"max_parallel": 1}}}`,
			"app.json line 1, column 24: formation.web.max_parallel: not supported by pier: a deploy proceeds by the app's deploy strategy (pier apps:info)"},
		{"heroku size", `{"formation": {"web": {"quantity": 1, "size": "standard-1X"}}}`, "formation.web.size: not supported by pier: pier has no dyno sizes"},
		{"quantity as a string", "{\"formation\": {\"web\": {\n  \"quantity\": \"2\"}}}", "app.json line 2, column 15: formation.web.quantity: want a whole number, have the string \"2\""},
		{"fractional quantity", `{"formation": {"web": {"quantity": 1.5}}}`, "formation.web.quantity: want a whole number, have 1.5"},
		{"negative quantity", `{"formation": {"web": {"quantity": -1}}}`, "app.json line 1, column 24: formation.web.quantity: -1 is not between 0 and 1000"},
		{"bad process name", `{"formation": {"Web": {"quantity": 1}}}`, "app.json line 1, column 16: formation.Web: process type name \"Web\" is invalid"},
		{"cron not a list", `{"cron": {"command": "x"}}`, "app.json line 1, column 10: cron: want a list, have an object"},
		{"bad schedule", "{\n  \"cron\": [\n    {\"command\": \"echo hi\", \"schedule\": \"*/1 * * *\"}\n  ]\n}",
			"app.json line 3, column 28: cron[0].schedule: bad schedule: \"*/1 * * *\": want 5 fields (minute hour day-of-month month day-of-week), have 4"},
		{"out of range schedule", `{"cron": [{"command": "x", "schedule": "61 * * * *"}]}`, "app.json line 1, column 28: cron[0].schedule: bad schedule"},
		{"no schedule", `{"cron": [{"command": "x"}]}`, "app.json line 1, column 11: cron[0]: no schedule"},
		{"no command", `{"cron": [{"schedule": "@hourly", "command": " "}]}`, "app.json line 1, column 35: cron[0].command: no command"},
		{"concurrency", `{"cron": [{"command": "x", "schedule": "@hourly", "concurrency_policy": "allow"}]}`, "cron[0].concurrency_policy: \"allow\" is not supported"},
		{"two predeploys", `{"scripts": {"predeploy": "a", "dokku": {"predeploy": "b"}}}`, "scripts.dokku.predeploy: scripts.predeploy is set too: keep one"},
		{"empty script", `{"scripts": {"postdeploy": ""}}`, "scripts.postdeploy: no command"},
		{"health type", `{"healthchecks": {"web": [{"type": "ready", "path": "/"}]}}`, "healthchecks.web[0].type: \"ready\" is not startup, liveness or readiness"},
		{"health path", `{"healthchecks": {"web": [{"path": "health"}]}}`, "healthchecks.web[0].path: \"health\" does not start with /"},
		{"health attempts", `{"healthchecks": {"web": [{"path": "/", "attempts": 0.5}]}}`, "healthchecks.web[0].attempts: want a whole number, have 0.5"},
		{"health timeout", `{"healthchecks": {"web": [{"path": "/", "timeout": -2}]}}`, "healthchecks.web[0].timeout: -2 is not between 0 and 3600"},
		{"health content", `{"healthchecks": {"web": [{"path": "/", "content": "ok"}]}}`, "healthchecks.web[0].content: not supported by pier: pier counts any 2xx or 3xx answer as healthy"},
		{"two startups", `{"healthchecks": {"web": [{"path": "/"}, {"type": "startup", "path": "/"}]}}`, "healthchecks.web[1]: a second startup check (the first is healthchecks.web[0])"},
		{"health paths differ", "{\"healthchecks\": {\"web\": [\n {\"path\": \"/a\"},\n {\"type\": \"liveness\", \"path\": \"/b\"}]}}",
			"app.json line 3, column 23: healthchecks.web[1].path: path /b differs from healthchecks.web[0]'s /a: pier runs one check per process type"},
		{"https check", `{"healthchecks": {"web": [{"path": "/", "scheme": "https"}]}}`, "healthchecks.web[0].scheme"},
		{"tag value type", `{"pier": {"processes": {"web": {"tags": {"disk": 1}}}}}`, "pier.processes.web.tags.disk: want a string, have the number 1"},
		{"max per host", `{"pier": {"processes": {"web": {"max_per_host": -1}}}}`, "pier.processes.web.max_per_host: -1 is negative (0 is no cap)"},
		{"omni type", `{"pier": {"processes": {"web": {"omni": "yes"}}}}`, "pier.processes.web.omni: want true or false, have the string \"yes\""},
		{"pier unknown", `{"pier": {"placement": {}}}`, "pier.placement: unknown key (known here: processes)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.text))
			var e *Error
			if !errors.As(err, &e) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v (%T), want an *Error", err, err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error\n  %s\nwant it to hold\n  %s", err, tc.want)
			}
		})
	}
}

// procfileTypes are process types as the controller makes them from
// commands: web with a port and a TCP check, release never restarted.
func procfileTypes(cmds map[string]string) map[string]api.ProcessType {
	out := map[string]api.ProcessType{}
	for name, cmd := range cmds {
		p := api.ProcessType{Args: []string{"/bin/sh", "-c", cmd}}
		if name == "web" {
			p.Ports = []api.Port{{Proto: "http", Service: "web.app", Health: &api.HealthCheck{Kind: "tcp"}}}
		}
		if name == api.ReleaseProcess {
			p.Restart = api.RestartNever
		}
		out[name] = p
	}
	return out
}

func TestApply(t *testing.T) {
	m, err := Parse([]byte(full))
	if err != nil {
		t.Fatal(err)
	}
	cmds := map[string]string{"web": "python3 app.py", "worker": "python3 worker.py", "release": "python3 check.py"}
	if err := m.Commands(cmds); err != nil {
		t.Fatal(err)
	}
	if cmds["cron-1"] != "echo tick" || cmds["cron-2"] != "python3 report.py" || cmds["release"] != "(python3 migrate.py\n) && python3 check.py" {
		t.Fatalf("commands %q", cmds)
	}
	procs := procfileTypes(cmds)
	// What an earlier release set through the API, which the manifest
	// replaces.
	w := procs["web"]
	w.Tags, w.Schedule, w.Resources.MemoryMB = map[string]string{"old": "yes"}, "@hourly", 512
	procs["web"] = w
	if err := m.Configure(procs); err != nil {
		t.Fatal(err)
	}
	if p := procs["cron-1"]; p.Schedule != "*/1 * * * *" || len(p.Ports) != 0 {
		t.Errorf("cron-1 %+v", p)
	}
	if p := procs["web"]; p.Schedule != "" || p.Tags != nil || p.Resources.MemoryMB != 512 || p.Ports[0].Health.Path != "/health" {
		t.Errorf("web %+v", p)
	}
	if p := procs["worker"]; p.Tags["disk"] != "ssd" || p.MaxPerHost != 1 || p.Resources.MemoryMB != 256 {
		t.Errorf("worker %+v", p)
	}
	summary := m.Summary()
	if summary != "cron-1 (*/1 * * * *), cron-2 (@daily), web health check GET /health, web=2, worker=0, predeploy, postdeploy, placement of worker" {
		t.Errorf("summary %q", summary)
	}
}

func TestApplyBad(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		cmds       map[string]string
		want       string
	}{
		{"cron name taken", "{\"cron\": [\n {\"command\": \"x\", \"schedule\": \"@daily\"}]}", map[string]string{"web": "w", "cron-1": "y"},
			"app.json line 2, column 2: cron[0]: its process type cron-1 is also in the Procfile: rename that one"},
		{"formation of no type", "{\"formation\": {\n  \"worker\": {\"quantity\": 1}}}", map[string]string{"web": "w"},
			"app.json line 2, column 3: formation.worker: the app has no process type worker (it has web)"},
		{"formation of release", `{"formation": {"release": {"quantity": 1}}}`, map[string]string{"web": "w", "release": "r"},
			"formation.release: release runs once at each deploy: it has no quantity"},
		{"health check of a worker", `{"healthchecks": {"worker": [{"path": "/"}]}}`, map[string]string{"web": "w", "worker": "x"},
			"healthchecks.worker: process type worker has no port to check: only web serves HTTP"},
		{"omni cron", `{"cron": [{"command": "x", "schedule": "@daily"}], "pier": {"processes": {"cron-1": {"omni": true}}}}`, map[string]string{"web": "w"},
			"app.json line 1, column 75: pier.processes.cron-1: a cron process type cannot be omni"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Parse([]byte(tc.text))
			if err != nil {
				t.Fatal(err)
			}
			err = m.Commands(tc.cmds)
			if err == nil {
				err = m.Configure(procfileTypes(tc.cmds))
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error\n  %v\nwant it to hold\n  %s", err, tc.want)
			}
		})
	}
}

// TestExample: examples/appjson's manifest is one pier takes, with its
// cron job, health check and formation.
func TestExample(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "examples", "appjson", FileName))
	if err != nil {
		t.Fatal(err)
	}
	m, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	cmds := map[string]string{"web": "python3 app.py"}
	if err := m.Commands(cmds); err != nil {
		t.Fatal(err)
	}
	if err := m.Configure(procfileTypes(cmds)); err != nil {
		t.Fatal(err)
	}
	if s := m.Summary(); s != "cron-1 (*/1 * * * *), web health check GET /health, web=2, postdeploy, placement of cron-1" {
		t.Fatalf("summary %q", s)
	}
}
