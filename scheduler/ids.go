package scheduler

import "strings"

// newID returns a job id not used in the snapshot or the plan:
// "<app>-<process type>-<10 seeded base-36 digits>", a DNS label that
// says in `pier ps` what the job is. The digits come from the plan's
// seeded generator so that a plan replays; the snapshot check keeps two
// plans with one seed from reusing an id that still exists.
func (pl *planner) newID(g *group) string {
	if g.idBase == "" {
		g.idBase = idBase(g.key.app, g.key.ptype)
	}
	return pl.newIDFrom(g.idBase)
}

// newIDFrom is newID for a prefix made by idBase.
func (pl *planner) newIDFrom(base string) string {
	const digits = "0123456789abcdefghijklmnopqrstuvwxyz"
	for {
		var b [10]byte
		x := pl.rng.Uint64()
		for i := range b {
			b[i] = digits[x%36]
			x /= 36
		}
		id := base + "-" + string(b[:])
		if !pl.ids[id] {
			pl.ids[id] = true
			return id
		}
	}
}

// idBase makes "<app>-<process type>" a DNS label prefix short enough to
// leave room for the random part within 63 characters.
func idBase(app, ptype string) string {
	var b strings.Builder
	dash := true // no leading dash
	for _, r := range strings.ToLower(app + "-" + ptype) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
			dash = false
		} else if !dash {
			b.WriteByte('-')
			dash = true
		}
	}
	s := b.String()
	if len(s) > 52 {
		s = s[:52]
	}
	s = strings.Trim(s, "-")
	if s == "" {
		return "job"
	}
	return s
}
