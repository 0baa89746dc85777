package appjson

import (
	"fmt"
	"strings"
	"time"

	"github.com/pierpaas/pier/api"
)

// Dokku lists several checks per process type by kind: startup (may the
// new job take traffic?), readiness and liveness (does it still serve?).
// pier runs one check per port that answers both questions: a job takes
// no traffic before the check passes, leaves discovery after `attempts`
// failures in a row, and a deploy waits on it. So the entries of a
// process type are merged into one, and they must not contradict each
// other: one path, and one value for each setting that several give.

// checkHealth checks the entries of healthchecks.name.
func (m *Manifest) checkHealth(name string) error {
	path := "healthchecks." + name
	if err := checkName(name); err != "" {
		return m.errorf(path, "%s", err)
	}
	seen := map[string]int{}
	for i, h := range m.Healthchecks[name] {
		p := fmt.Sprintf("%s[%d]", path, i)
		typ := h.Type
		if typ == "" {
			typ = "startup"
		}
		switch typ {
		case "startup", "liveness", "readiness":
		default:
			return m.errorf(p+".type", "%q is not startup, liveness or readiness", h.Type)
		}
		if j, dup := seen[typ]; dup {
			return m.errorf(p, "a second %s check (the first is %s[%d])", typ, path, j)
		}
		seen[typ] = i
		if h.Path != "" && !strings.HasPrefix(h.Path, "/") {
			return m.errorf(p+".path", "%q does not start with /", h.Path)
		}
		if h.Scheme != "" && h.Scheme != "http" {
			return m.errorf(p+".scheme", "%q: pier checks over plain http inside the cluster", h.Scheme)
		}
		for _, f := range []struct {
			key       string
			v, lo, hi int
		}{{"attempts", h.Attempts, 0, MaxAttempts}, {"wait", h.Wait, 0, MaxSeconds}, {"timeout", h.Timeout, 0, MaxSeconds}, {"initialDelay", h.InitialDelay, 0, MaxSeconds}} {
			if f.v < f.lo || f.v > f.hi {
				return m.errorf(p+"."+f.key, "%d is not between %d and %d", f.v, f.lo, f.hi)
			}
		}
		if i > 0 {
			if err := m.agree(path, i); err != nil {
				return err
			}
		}
	}
	return nil
}

// agree checks entry i of healthchecks.TYPE against the ones before it.
func (m *Manifest) agree(path string, i int) error {
	hs := m.Healthchecks[strings.TrimPrefix(path, "healthchecks.")]
	h := hs[i]
	p := fmt.Sprintf("%s[%d]", path, i)
	for j := range i {
		o := hs[j]
		for _, f := range []struct {
			key  string
			a, b any
			set  bool
		}{
			{"path", h.Path, o.Path, true},
			{"attempts", h.Attempts, o.Attempts, h.Attempts != 0 && o.Attempts != 0},
			{"wait", h.Wait, o.Wait, h.Wait != 0 && o.Wait != 0},
			{"timeout", h.Timeout, o.Timeout, h.Timeout != 0 && o.Timeout != 0},
			{"initialDelay", h.InitialDelay, o.InitialDelay, h.InitialDelay != 0 && o.InitialDelay != 0},
		} {
			if f.set && f.a != f.b {
				return m.errorf(m.field(p, f.key), "%s %v differs from %s[%d]'s %v: pier runs one check per process type, for startup and liveness both", f.key, f.a, path, j, f.b)
			}
		}
	}
	return nil
}

// HealthCheck is the check the entries of healthchecks.name make, or nil
// if there are none: http GET path when they give one, else a TCP
// connect, with attempts as the threshold, wait as the interval and
// initialDelay as the start grace.
func (m *Manifest) HealthCheck(name string) *api.HealthCheck {
	hs := m.Healthchecks[name]
	if len(hs) == 0 {
		return nil
	}
	hc := &api.HealthCheck{Kind: "tcp"}
	for _, h := range hs {
		if h.Path != "" {
			hc.Kind, hc.Path = "http", h.Path
		}
		if h.Attempts != 0 {
			hc.Threshold = h.Attempts
		}
		if h.Wait != 0 {
			hc.Interval = api.Duration(time.Duration(h.Wait) * time.Second)
		}
		if h.Timeout != 0 {
			hc.Timeout = api.Duration(time.Duration(h.Timeout) * time.Second)
		}
		if h.InitialDelay != 0 {
			hc.StartGrace = api.Duration(time.Duration(h.InitialDelay) * time.Second)
		}
	}
	return hc
}
