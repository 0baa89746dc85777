package api

import (
	"strings"
	"testing"
)

func TestOneOffValidate(t *testing.T) {
	ok := OneOff{ID: "run-1", App: "shop", Args: []string{"rake", "db:migrate"}, Env: map[string]string{"X": "1"}}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	withPT := OneOff{ID: "run-2", App: "shop", Release: "shop-v3", ProcessType: "web"}
	if err := withPT.Validate(); err != nil {
		t.Fatalf("a process type gives the command: %v", err)
	}
	for _, tc := range []struct {
		o    OneOff
		want string
	}{
		{OneOff{ID: "Bad_ID", Args: []string{"x"}}, "invalid id"},
		{OneOff{ID: "a", App: "Shop", Args: []string{"x"}}, "invalid app"},
		{OneOff{ID: "a"}, "no command"},
		{OneOff{ID: "a", ProcessType: "web"}, "needs a release"},
		{OneOff{ID: "a", Args: []string{"x"}, Env: map[string]string{"1X": ""}}, "environment"},
		{OneOff{ID: "a", Args: []string{"x"}, Resources: Resources{MemoryMB: -1}}, "negative"},
		{OneOff{ID: "a", Args: []string{"x"}, Artifact: &Artifact{URI: "u"}}, "sha256"},
	} {
		if err := tc.o.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.o, err, tc.want)
		}
	}
}

func TestProcessTypeSchedule(t *testing.T) {
	for _, s := range []string{"*/5 * * * *", "@every 1s", "@daily", "0 9 * * mon-fri"} {
		p := ProcessType{Args: []string{"x"}, Schedule: s}
		if err := p.Validate("job"); err != nil {
			t.Errorf("%q: %v", s, err)
		}
	}
	for _, p := range []ProcessType{
		{Args: []string{"x"}, Schedule: "every minute"},
		{Args: []string{"x"}, Schedule: "@every 1ms"},
		{Args: []string{"x"}, Schedule: "@hourly", Omni: true},
	} {
		if err := p.Validate("job"); err == nil {
			t.Errorf("%+v validated", p)
		}
	}
}
