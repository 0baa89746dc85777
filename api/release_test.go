package api

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestReleaseValidate(t *testing.T) {
	ok := ProcessType{Args: []string{"web"}}
	for _, tc := range []struct {
		name string
		r    Release
		err  string
	}{
		{"ok", Release{ID: "shop-v1", App: "shop", Processes: map[string]ProcessType{"web": ok}}, ""},
		{"bad id", Release{ID: "Shop_v1", App: "shop"}, "invalid id"},
		{"no command", Release{ID: "shop-v1", App: "shop", Processes: map[string]ProcessType{"web": {}}}, "no command"},
		{"policy", Release{ID: "shop-v1", App: "shop", Processes: map[string]ProcessType{"web": {Args: []string{"x"}, Restart: "sometimes"}}}, "restart policy"},
		{"max per host", Release{ID: "shop-v1", App: "shop", Processes: map[string]ProcessType{"web": {Args: []string{"x"}, MaxPerHost: -1}}}, "max_per_host"},
	} {
		err := tc.r.Validate()
		if (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s: Validate = %v, want %q", tc.name, err, tc.err)
		}
	}
	if p := (&ProcessType{}).RestartPolicy(); p != RestartAlways {
		t.Errorf("default restart policy %q", p)
	}
}

func TestFormationValidate(t *testing.T) {
	if err := (&Formation{App: "shop", Release: "shop-v1", Processes: map[string]int{"web": 2}}).Validate(); err != nil {
		t.Error(err)
	}
	if err := (&Formation{App: "shop", Release: "shop-v1", Processes: map[string]int{"web": -1}}).Validate(); err == nil {
		t.Error("negative count accepted")
	}
}

func TestJobRestartFieldsJSON(t *testing.T) {
	j := Job{ID: "shop-web-1", Scheduler: "service", Restarts: 3, Backoff: Duration(4 * time.Second)}
	b, err := json.Marshal(j)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"restarts":3,"backoff":"4s"`) {
		t.Errorf("json %s", b)
	}
	var back Job
	if err := json.Unmarshal(b, &back); err != nil || back.Restarts != 3 || back.Backoff != j.Backoff || back.Scheduler != "service" {
		t.Errorf("round trip %+v, %v", back, err)
	}
}
