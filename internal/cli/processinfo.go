package cli

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/pierpaas/pier/api"
)

// processDetails are the lines releases:info shows under a process type
// besides its command: what app.json (or the API) declared for it, which
// is otherwise only visible in --json.
func processDetails(p api.ProcessType) []string {
	var out []string
	if p.Schedule != "" {
		out = append(out, fmt.Sprintf("schedule: %s (UTC)", p.Schedule))
	}
	for _, port := range p.Ports {
		if h := port.Health; h != nil {
			check := "tcp connect"
			if h.Kind == "http" {
				check = "GET " + h.Path
			}
			var opts []string
			for _, o := range []struct {
				name string
				d    api.Duration
			}{{"every", h.Interval}, {"timeout", h.Timeout}, {"after", h.StartGrace}} {
				if o.d != 0 {
					opts = append(opts, fmt.Sprintf("%s %s", o.name, time.Duration(o.d)))
				}
			}
			if h.Threshold != 0 {
				opts = append(opts, fmt.Sprintf("%d attempts", h.Threshold))
			}
			if len(opts) > 0 {
				check += " (" + strings.Join(opts, ", ") + ")"
			}
			out = append(out, "health check: "+check)
		}
	}
	var place []string
	for _, k := range slices.Sorted(maps.Keys(p.Tags)) {
		place = append(place, k+"="+p.Tags[k])
	}
	if p.MaxPerHost > 0 {
		place = append(place, fmt.Sprintf("max %d per host", p.MaxPerHost))
	}
	if p.Omni {
		place = append(place, "on every host")
	}
	if len(place) > 0 {
		out = append(out, "placement: "+strings.Join(place, ", "))
	}
	return out
}
