package build

import (
	"fmt"

	"sigs.k8s.io/yaml"

	"github.com/pierpaas/pier/api"
)

// release is what a buildpack's bin/release printed.
type release struct {
	processTypes map[string]string
	configVars   map[string]string
}

// parseRelease reads bin/release's YAML: default_process_types and
// config_vars, maps of strings (numbers and booleans are taken as they
// were written, since buildpacks print `PORT: 5000` unquoted). Anything
// else in it, such as addons, means nothing to pier and is ignored.
func parseRelease(b []byte) (release, error) {
	var raw struct {
		DefaultProcessTypes map[string]any `json:"default_process_types"`
		ConfigVars          map[string]any `json:"config_vars"`
	}
	if err := yaml.Unmarshal(b, &raw); err != nil {
		return release{}, fmt.Errorf("invalid YAML: %w", err)
	}
	var rel release
	var err error
	if rel.processTypes, err = stringMap("default_process_types", raw.DefaultProcessTypes); err != nil {
		return release{}, err
	}
	for name, cmd := range rel.processTypes {
		if !api.ValidID(name) {
			return release{}, fmt.Errorf("default_process_types: process type name %q is invalid (lower-case letters, digits and dashes)", name)
		}
		if cmd == "" {
			return release{}, fmt.Errorf("default_process_types: process type %s has no command", name)
		}
	}
	if rel.configVars, err = stringMap("config_vars", raw.ConfigVars); err != nil {
		return release{}, err
	}
	return rel, nil
}

func stringMap(field string, m map[string]any) (map[string]string, error) {
	out := make(map[string]string, len(m))
	for k, v := range m {
		switch v := v.(type) {
		case string:
			out[k] = v
		case float64, bool:
			// JSON numbers by way of sigs.k8s.io/yaml: %v prints 5000,
			// not 5e+03, for integers.
			out[k] = fmt.Sprint(v)
		case nil:
			out[k] = ""
		default:
			return nil, fmt.Errorf("%s: %s is not a string", field, k)
		}
	}
	return out, nil
}
