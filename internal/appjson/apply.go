package appjson

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/pierpaas/pier/api"
)

// CronPrefix names the process types of cron entries: cron-1 for the
// first entry, cron-2 for the second. Dokku's entries have no name, and a
// process type needs one (in job ids, pier ps, pier logs -d); the order
// in the file is the one thing the user can see and keep.
const CronPrefix = "cron-"

// CronName is the process type of cron entry i (0-based).
func CronName(i int) string { return fmt.Sprintf("%s%d", CronPrefix, i+1) }

// Commands adds the manifest's commands to an app's commands by process
// type (the Procfile's over the buildpacks' defaults): a cron-N type for
// each cron entry, and the predeploy script as the release phase, before
// the Procfile's release command if it has one (Dokku runs predeploy
// first too). A cron entry whose name the app already uses is an error.
func (m *Manifest) Commands(cmds map[string]string) error {
	for i, c := range m.Cron {
		name := CronName(i)
		if _, taken := cmds[name]; taken {
			return m.errorf(fmt.Sprintf("cron[%d]", i), "its process type %s is also in the Procfile: rename that one", name)
		}
		cmds[name] = c.Command
	}
	if pre := m.predeploy(); pre != "" {
		if rel, ok := cmds[api.ReleaseProcess]; ok {
			// A newline ends a trailing comment of the script; the
			// subshell keeps its exits and cds to itself.
			pre = "(" + pre + "\n) && " + rel
		}
		cmds[api.ReleaseProcess] = pre
	}
	return nil
}

func (m *Manifest) predeploy() string {
	if m.Scripts.Predeploy != "" {
		return m.Scripts.Predeploy
	}
	return m.Scripts.Dokku.Predeploy
}

// Configure sets on an app's process types (made from the commands
// Commands returned) everything the manifest governs, which it is the
// source of truth for: each cron type's schedule (every other type has
// none), the health check of a type with a port (TCP when the manifest
// gives none), and placement (tags, max per host, omni: none unless the
// manifest says). Resources it gives replace the process type's; those
// it does not give are left as they are. A key that names a process type
// the app does not have is an error, as is a health check for a type
// with no port.
func (m *Manifest) Configure(procs map[string]api.ProcessType) error {
	for _, group := range []struct {
		prefix string
		names  []string
	}{
		{"formation.", slices.Sorted(maps.Keys(m.Formation))},
		{"healthchecks.", slices.Sorted(maps.Keys(m.Healthchecks))},
		{"pier.processes.", slices.Sorted(maps.Keys(m.Pier.Processes))},
	} {
		for _, name := range group.names {
			if _, ok := procs[name]; !ok {
				return m.errorf(group.prefix+name, "the app has no process type %s (it has %s)", name, strings.Join(slices.Sorted(maps.Keys(procs)), ", "))
			}
			if group.prefix == "formation." && name == api.ReleaseProcess {
				return m.errorf(group.prefix+name, "release runs once at each deploy: it has no quantity")
			}
		}
	}
	schedules := map[string]int{}
	for i := range m.Cron {
		schedules[CronName(i)] = i
	}
	for name, p := range procs {
		p.Schedule = ""
		if i, ok := schedules[name]; ok {
			p.Schedule = m.Cron[i].Schedule
		}
		if hc := m.HealthCheck(name); hc != nil {
			if len(p.Ports) == 0 {
				return m.errorf("healthchecks."+name, "process type %s has no port to check: only web serves HTTP", name)
			}
			p.Ports = slices.Clone(p.Ports)
			p.Ports[0].Health = hc
		}
		pp := m.Pier.Processes[name]
		p.Tags, p.MaxPerHost, p.Omni = pp.Tags, pp.MaxPerHost, pp.Omni
		if pp.CPUMillis > 0 {
			p.Resources.CPUMillis = pp.CPUMillis
		}
		if pp.MemoryMB > 0 {
			p.Resources.MemoryMB = pp.MemoryMB
		}
		if err := p.Validate(name); err != nil {
			where := "pier.processes." + name
			if i, ok := schedules[name]; ok {
				if _, set := m.pos[where]; !set {
					where = fmt.Sprintf("cron[%d]", i)
				}
			}
			return m.errorf(where, "%s", strings.TrimPrefix(err.Error(), "process type "+name+": "))
		}
		procs[name] = p
	}
	return nil
}

// Quantities are the job counts of the process types the manifest gives
// one: formation quantities, and 1 for each cron type (which enables it),
// unless the formation says otherwise. They apply to a process type when
// it first appears in the app, as Heroku applies formation when it
// creates an app; afterwards pier scale owns the count.
func (m *Manifest) Quantities() map[string]int {
	out := map[string]int{}
	for i := range m.Cron {
		out[CronName(i)] = 1
	}
	for name, f := range m.Formation {
		if f.Quantity != nil {
			out[name] = *f.Quantity
		}
	}
	return out
}

// Postdeploy returns the commands to run after a successful deploy, in
// order: Heroku's scripts.postdeploy only after the app's first one
// (first), as for Heroku's review apps, whose databases it seeds; Dokku's
// scripts.dokku.postdeploy after every one.
func (m *Manifest) Postdeploy(first bool) []string {
	var out []string
	if first && m.Scripts.Postdeploy != "" {
		out = append(out, m.Scripts.Postdeploy)
	}
	if m.Scripts.Dokku.Postdeploy != "" {
		out = append(out, m.Scripts.Dokku.Postdeploy)
	}
	return out
}

// Summary is one line on what the manifest declares, for the build's
// output.
func (m *Manifest) Summary() string {
	var parts []string
	for i, c := range m.Cron {
		parts = append(parts, fmt.Sprintf("%s (%s)", CronName(i), c.Schedule))
	}
	for _, name := range slices.Sorted(maps.Keys(m.Healthchecks)) {
		if hc := m.HealthCheck(name); hc != nil {
			what := "tcp"
			if hc.Kind == "http" {
				what = "GET " + hc.Path
			}
			parts = append(parts, fmt.Sprintf("%s health check %s", name, what))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(m.Formation)) {
		if q := m.Formation[name].Quantity; q != nil {
			parts = append(parts, fmt.Sprintf("%s=%d", name, *q))
		}
	}
	if m.predeploy() != "" {
		parts = append(parts, "predeploy")
	}
	if m.Scripts.Postdeploy != "" || m.Scripts.Dokku.Postdeploy != "" {
		parts = append(parts, "postdeploy")
	}
	if len(m.Pier.Processes) > 0 {
		parts = append(parts, "placement of "+strings.Join(slices.Sorted(maps.Keys(m.Pier.Processes)), ", "))
	}
	if len(parts) == 0 {
		return "nothing pier acts on"
	}
	return strings.Join(parts, ", ")
}
