package appjson

import (
	"slices"
	"strings"
	"testing"
)

func TestAddons(t *testing.T) {
	for _, tc := range []struct {
		json, want, err string
	}{
		{`{"addons": ["heroku-postgresql"]}`, "postgres", ""},
		{`{"addons": ["heroku-postgresql:essential-0", {"plan": "heroku-redis:mini", "as": "CACHE"}, "postgres"]}`, "postgres redis", ""},
		{`{"addons": []}`, "", ""},
		{`{"name": "x"}`, "", ""},
		{"{\n  \"addons\": [\"papertrail\"]\n}", "", `line 2, column 3: addons: add-on "papertrail": pier provides postgres`},
		{`{"addons": [{"as": "DB"}]}`, "", `an add-on is "service[:plan]"`},
		{`{"addons": "heroku-postgresql"}`, "", "want a list of add-ons"},
	} {
		m, err := Parse([]byte(tc.json))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: %v, want an error saying %q", tc.json, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.json, err)
			continue
		}
		if got := strings.Join(m.Resources(), " "); got != tc.want {
			t.Errorf("%s: resources %q, want %q", tc.json, got, tc.want)
		}
		if slices.ContainsFunc(m.Warnings(), func(w string) bool { return strings.Contains(w, "addons") }) {
			t.Errorf("%s: warned about addons: %v", tc.json, m.Warnings())
		}
	}
}
