// Package cron parses the schedule expressions of cron process types and
// computes their ticks: the standard five fields (minute, hour, day of
// month, month, day of week, as in crontab(5), with names, ranges, steps
// and lists), the @yearly, @monthly, @weekly, @daily and @hourly
// shorthands, and "@every <duration>". Times are reckoned in UTC, so that
// every server computes the same ticks whatever its local zone. It uses
// nothing but the standard library, and nothing of pier: the api package
// validates schedules with it, and a custom scheduler may tick with it.
package cron

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ErrSyntax is the error of every schedule that does not parse.
var ErrSyntax = errors.New("cron: bad schedule")

// Schedule gives the ticks of an expression.
type Schedule interface {
	// Next returns the first tick strictly after t, or the zero time if
	// there is none within five years. An "@every" schedule ticks at
	// t + its interval: its ticks are anchored at the previous one.
	Next(t time.Time) time.Time
}

// MinEvery is the shortest "@every" interval accepted.
const MinEvery = time.Second

// Parse parses an expression.
func Parse(expr string) (Schedule, error) {
	s := strings.TrimSpace(expr)
	if s == "" {
		return nil, fmt.Errorf("%w: empty", ErrSyntax)
	}
	if rest, ok := strings.CutPrefix(s, "@every"); ok {
		d, err := time.ParseDuration(strings.TrimSpace(rest))
		if err != nil || rest == "" || rest[0] != ' ' {
			return nil, fmt.Errorf("%w: %q: @every wants a duration such as 5m", ErrSyntax, expr)
		}
		if d < MinEvery {
			return nil, fmt.Errorf("%w: %q: @every less than %s", ErrSyntax, expr, MinEvery)
		}
		return Every(d), nil
	}
	if strings.HasPrefix(s, "@") {
		std, ok := shorthands[s]
		if !ok {
			return nil, fmt.Errorf("%w: %q: unknown shorthand (@yearly, @monthly, @weekly, @daily, @hourly, @every <duration>)", ErrSyntax, expr)
		}
		s = std
	}
	fields := strings.Fields(s)
	if len(fields) != 5 {
		return nil, fmt.Errorf("%w: %q: want 5 fields (minute hour day-of-month month day-of-week), have %d", ErrSyntax, expr, len(fields))
	}
	var sp spec
	var err error
	for i, f := range fieldSpecs {
		if sp.bits[i], err = f.parse(fields[i]); err != nil {
			return nil, fmt.Errorf("%w: %q: %s", ErrSyntax, expr, err)
		}
	}
	sp.bits[dow] |= sp.bits[dow] >> 7 & 1 // 7 is Sunday too
	sp.domAny = fields[dom] == "*" || strings.HasPrefix(fields[dom], "*/")
	sp.dowAny = fields[dow] == "*" || strings.HasPrefix(fields[dow], "*/")
	probe := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	if sp.Next(probe).IsZero() {
		return nil, fmt.Errorf("%w: %q never fires", ErrSyntax, expr)
	}
	return &sp, nil
}

var shorthands = map[string]string{
	"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
	"@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
}

// Every ticks at a fixed interval after the previous tick.
type Every time.Duration

func (e Every) Next(t time.Time) time.Time { return t.Add(time.Duration(e)).UTC() }

// Latest returns the last tick of s in (after, now], and how many ticks
// that interval holds; zero and 0 if it holds none. A scheduler that was
// away for a while runs the latest tick once and can say how many it
// missed, rather than running them all in a burst.
func Latest(s Schedule, after, now time.Time) (time.Time, int) {
	if e, ok := s.(Every); ok {
		if !now.After(after) {
			return time.Time{}, 0
		}
		n := int(now.Sub(after) / time.Duration(e))
		if n == 0 {
			return time.Time{}, 0
		}
		return after.Add(time.Duration(n) * time.Duration(e)).UTC(), n
	}
	var last time.Time
	n := 0
	// A minute schedule left alone for a year is half a million ticks;
	// past a bound, count no further and look for the latest tick near now.
	const bound = 10000
	for t := s.Next(after); !t.IsZero() && !t.After(now); t = s.Next(t) {
		last = t
		if n++; n == bound {
			for u := s.Next(now.Add(-24 * time.Hour)); !u.IsZero() && !u.After(now); u = s.Next(u) {
				last = u
			}
			break
		}
	}
	return last, n
}

const (
	minute = iota
	hour
	dom
	month
	dow
)

// spec is a five-field expression: one bit per allowed value of each field.
type spec struct {
	bits           [5]uint64
	domAny, dowAny bool
}

type fieldSpec struct {
	name     string
	min, max int
	names    []string // names[i] stands for value nameBase+i
	nameBase int
}

var fieldSpecs = [5]fieldSpec{
	{name: "minute", min: 0, max: 59},
	{name: "hour", min: 0, max: 23},
	{name: "day of month", min: 1, max: 31},
	{name: "month", min: 1, max: 12, names: []string{"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}, nameBase: 1},
	{name: "day of week", min: 0, max: 7, names: []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}, nameBase: 0},
}

func (f fieldSpec) parse(s string) (uint64, error) {
	var bits uint64
	for _, part := range strings.Split(s, ",") {
		rng, stepStr, hasStep := strings.Cut(part, "/")
		step := 1
		if hasStep {
			n, err := strconv.Atoi(stepStr)
			if err != nil || n <= 0 {
				return 0, fmt.Errorf("%s: bad step %q", f.name, stepStr)
			}
			step = n
		}
		lo, hi := f.min, f.max
		switch {
		case rng == "*":
			if f.name == "day of week" {
				hi = 6 // * is each day once
			}
		case strings.Contains(rng, "-"):
			a, b, _ := strings.Cut(rng, "-")
			var err error
			if lo, err = f.value(a); err != nil {
				return 0, err
			}
			if hi, err = f.value(b); err != nil {
				return 0, err
			}
			if lo > hi {
				return 0, fmt.Errorf("%s: range %q runs backwards", f.name, rng)
			}
		default:
			v, err := f.value(rng)
			if err != nil {
				return 0, err
			}
			lo, hi = v, v
			if hasStep {
				hi = f.max // "5/15" is "5-max/15", as in Vixie cron
			}
		}
		for v := lo; v <= hi; v += step {
			bits |= 1 << uint(v)
		}
	}
	return bits, nil
}

func (f fieldSpec) value(s string) (int, error) {
	for i, n := range f.names {
		if strings.EqualFold(s, n) {
			return f.nameBase + i, nil
		}
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < f.min || v > f.max {
		return 0, fmt.Errorf("%s: %q is not in %d-%d", f.name, s, f.min, f.max)
	}
	return v, nil
}

func (s *spec) has(field, v int) bool { return s.bits[field]&(1<<uint(v)) != 0 }

// dayMatches follows crontab(5): when both day fields are restricted, a
// day matching either runs.
func (s *spec) dayMatches(t time.Time) bool {
	d, w := s.has(dom, t.Day()), s.has(dow, int(t.Weekday()))
	switch {
	case s.domAny && s.dowAny:
		return true
	case s.domAny:
		return w
	case s.dowAny:
		return d
	}
	return d || w
}

// Next walks forward field by field, skipping a whole month, day or hour
// that cannot match. UTC has no daylight saving, so every step is exact.
func (s *spec) Next(t time.Time) time.Time {
	t = t.UTC().Truncate(time.Minute).Add(time.Minute)
	limit := t.AddDate(5, 0, 0)
	for t.Before(limit) {
		y, mo, d := t.Date()
		switch {
		case !s.has(month, int(mo)):
			t = time.Date(y, mo+1, 1, 0, 0, 0, 0, time.UTC)
		case !s.dayMatches(t):
			t = time.Date(y, mo, d+1, 0, 0, 0, 0, time.UTC)
		case !s.has(hour, t.Hour()):
			t = time.Date(y, mo, d, t.Hour()+1, 0, 0, 0, time.UTC)
		case !s.has(minute, t.Minute()):
			t = t.Add(time.Minute)
		default:
			return t
		}
	}
	return time.Time{}
}
