package controller

// The config vars of a release, and the sizes of its process types: both
// change by making a new release from the current one.

import (
	"maps"
	"net/http"
	"strings"

	"github.com/pierpaas/pier/api"
)

func checkEnv(env map[string]string) error {
	if len(env) > maxEnvEntries {
		return invalid("at most %d config vars", maxEnvEntries)
	}
	for k, v := range env {
		if !validEnvKey(k) {
			return invalid("config var name %q: letters, digits and underscores, not starting with a digit", k)
		}
		if len(v) > maxEnvValue {
			return invalid("config var %s is longer than %d bytes", k, maxEnvValue)
		}
		if strings.ContainsRune(v, 0) {
			return invalid("config var %s contains a NUL byte", k)
		}
	}
	return nil
}

func validEnvKey(k string) bool {
	if k == "" || len(k) > 255 || k[0] >= '0' && k[0] <= '9' {
		return false
	}
	return !strings.ContainsFunc(k, func(r rune) bool {
		return !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
	})
}

func (c *Controller) getEnv(w http.ResponseWriter, r *http.Request) error {
	app, _, err := c.loadApp(r.Context(), r.PathValue("app"))
	if err != nil {
		return err
	}
	env := map[string]string{}
	if app.Release != "" {
		rel, err := c.release(r.Context(), app.Name, app.Release)
		if err != nil {
			return err
		}
		maps.Copy(env, rel.Env)
	}
	writeJSON(w, http.StatusOK, env)
	return nil
}

func (c *Controller) setEnv(w http.ResponseWriter, r *http.Request) error {
	var req map[string]*string
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if len(req) == 0 {
		return invalid("no config vars to set or unset")
	}
	set := map[string]string{}
	for k, v := range req {
		if v != nil {
			set[k] = *v
		} else if !validEnvKey(k) {
			return invalid("config var name %q: letters, digits and underscores, not starting with a digit", k)
		}
	}
	if err := checkEnv(set); err != nil {
		return err
	}
	res, err := c.newRelease(r.Context(), r.PathValue("app"), func(base, next *api.Release) error {
		next.Env = map[string]string{}
		if base != nil {
			next.Artifact, next.Processes = base.Artifact, base.Processes
			maps.Copy(next.Env, base.Env)
		}
		for k, v := range req {
			if v == nil {
				delete(next.Env, k)
			} else {
				next.Env[k] = *v
			}
		}
		return checkEnv(next.Env)
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, res)
	return nil
}

// resize makes a release with new resources for process types (Heroku's
// ps:resize): resources belong to the release, so that a rollback brings
// back the sizes that went with the code.
func (c *Controller) resize(w http.ResponseWriter, r *http.Request) error {
	var req map[string]api.Resources
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if len(req) == 0 {
		return invalid("nothing to resize: give process types and sizes")
	}
	res, err := c.newRelease(r.Context(), r.PathValue("app"), func(base, next *api.Release) error {
		if base == nil {
			return invalid("app %s has no release yet: deploy it first", next.App)
		}
		next.Artifact, next.Env = base.Artifact, base.Env
		next.Processes = maps.Clone(base.Processes)
		for name, size := range req {
			p, ok := next.Processes[name]
			if !ok {
				return invalid("app %s has no process type %q in v%d (it has: %s)", next.App, name, base.Version, scalable(*base))
			}
			if size.MemoryMB < 0 || size.CPUMillis < 0 || size.PIDs < 0 || size.DiskMB < 0 {
				return invalid("%s: negative resources", name)
			}
			if size.MemoryMB > 0 {
				p.Resources.MemoryMB = size.MemoryMB
			}
			if size.CPUMillis > 0 {
				p.Resources.CPUMillis = size.CPUMillis
			}
			if size.PIDs > 0 {
				p.Resources.PIDs = size.PIDs
			}
			if size.DiskMB > 0 {
				p.Resources.DiskMB = size.DiskMB
			}
			next.Processes[name] = p
		}
		return nil
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, res)
	return nil
}
