package appjson

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// Heroku's addons, as pier's resources: an app.json that asks for
// heroku-postgresql gets a PostgreSQL resource attached on its first
// deploy, with DATABASE_URL, as on Heroku. Plans and options are
// Heroku's to sell; pier has one kind of each datastore and ignores them.

// addonTypes maps an add-on's service name to pier's resource type.
var addonTypes = map[string]string{
	"heroku-postgresql": "postgres", "postgres": "postgres", "postgresql": "postgres",
	"heroku-redis": "redis", "redis": "redis",
}

// Resources are the resource types (postgres, redis) the addons ask for,
// each once, in the order the file names them.
func (m *Manifest) Resources() []string { return m.resources }

// checkAddons reads addons: a list of "service[:plan]" strings or
// {"plan": "service[:plan]", "as": ...} objects.
func (m *Manifest) checkAddons() error {
	if len(m.Addons) == 0 || string(m.Addons) == "null" {
		return nil
	}
	var list []json.RawMessage
	if err := json.Unmarshal(m.Addons, &list); err != nil {
		return m.errorf("addons", `want a list of add-ons, such as ["heroku-postgresql"]`)
	}
	for i, raw := range list {
		path := fmt.Sprintf("addons[%d]", i)
		if _, ok := m.pos[path]; !ok {
			path = "addons"
		}
		var plan string
		if err := json.Unmarshal(raw, &plan); err != nil {
			var obj struct {
				Plan string `json:"plan"`
			}
			if err := json.Unmarshal(raw, &obj); err != nil || obj.Plan == "" {
				return m.errorf(path, `an add-on is "service[:plan]" or {"plan": "service[:plan]"}`)
			}
			plan = obj.Plan
		}
		service, _, _ := strings.Cut(plan, ":")
		typ, ok := addonTypes[service]
		if !ok {
			return m.errorf(path, "add-on %q: pier provides postgres (heroku-postgresql) and redis (heroku-redis)", service)
		}
		if !slices.Contains(m.resources, typ) {
			m.resources = append(m.resources, typ)
		}
	}
	return nil
}
