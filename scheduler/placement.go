package scheduler

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/pierpaas/pier/api"
)

// HostState is a host as placement sees it: what it declared, and what the
// unfinished jobs placed on it already request.
type HostState struct {
	Host *api.Host
	// Index is the host's position in the placer's table; GroupState's
	// counts are indexed by it.
	Index   int
	CPUUsed int64
	MemUsed int64
	// Draining hosts take nothing new, whatever the pipeline.
	Draining bool
	tie      uint64 // seeded, so ties between equal hosts replay
}

// Request is what each job of one (app, release, process type) asks of a
// host. Build it with NewRequest so that its rejection reasons are made
// once, not once per host.
type Request struct {
	App, Release, ProcessType string
	Resources                 api.Resources
	Tags                      map[string]string
	MaxPerHost                int
	Omni                      bool
	// Host, when set, is the only host the jobs may go to: the one that
	// holds their volumes (see Pin).
	Host string

	hostReason string
	tagKeys    []string // sorted, so the reason for a host is stable
	tagReasons []string
	maxReason  string
}

// NewRequest returns the request of a process type's jobs.
func NewRequest(app, release, processType string, pt *api.ProcessType) *Request {
	r := &Request{App: app, Release: release, ProcessType: processType,
		Resources: pt.Resources, Tags: pt.Tags, MaxPerHost: pt.MaxPerHost, Omni: pt.Omni}
	r.tagKeys = slices.Sorted(maps.Keys(pt.Tags))
	for _, k := range r.tagKeys {
		r.tagReasons = append(r.tagReasons, "missing tag "+k+"="+pt.Tags[k])
	}
	r.maxReason = fmt.Sprintf("at max %d per host", pt.MaxPerHost)
	return r
}

// GroupState is the part of the cluster's state that depends on the
// request: live jobs per host (indexed by HostState.Index) of the same app
// and process type in any release (for max per host), and of the same
// release too (for spreading and omni).
type GroupState struct {
	SameType      []int32
	SameFormation []int32
}

// A Checker rejects a host that cannot take one more job of a request,
// and says why in a few words that read well after a count ("2 lacked
// memory").
type Checker interface {
	Check(h *HostState, r *Request, g *GroupState) (ok bool, reason string)
}

// A Ranker scores a feasible host; lower scores are tried first, and the
// first ranker of a pipeline decides before the second.
type Ranker interface {
	Score(h *HostState, r *Request, g *GroupState) float64
}

// Pipeline is the placement policy: every checker must pass, then rankers
// order what is left. A host's presence in the snapshot is its liveness,
// so no checker tests it.
type Pipeline struct {
	Checkers []Checker
	Rankers  []Ranker
}

// DefaultPipeline checks resources, tags, max per host and omni, spreads
// a formation across hosts and then prefers the least loaded host.
func DefaultPipeline() *Pipeline {
	return &Pipeline{
		Checkers: []Checker{TagsMatch{}, ResourcesFit{}, MaxPerHost{}, OmniOnePerHost{}},
		Rankers:  []Ranker{Spread{}, LeastLoaded{}},
	}
}

// TagsMatch requires every tag the process type asks for.
type TagsMatch struct{}

func (TagsMatch) Check(h *HostState, r *Request, _ *GroupState) (bool, string) {
	for i, k := range r.tagKeys {
		if v, ok := h.Host.Tags[k]; !ok || v != r.Tags[k] {
			return false, r.tagReasons[i]
		}
	}
	return true, ""
}

// ResourcesFit requires the requested memory and CPU to be free: declared
// by the host and not requested by jobs placed there that have not ended.
type ResourcesFit struct{}

func (ResourcesFit) Check(h *HostState, r *Request, _ *GroupState) (bool, string) {
	if m := r.Resources.MemoryMB; m > 0 && h.MemUsed+m > h.Host.MemoryMB {
		return false, "lacked memory"
	}
	if c := r.Resources.CPUMillis; c > 0 && h.CPUUsed+c > h.Host.CPUMillis {
		return false, "lacked cpu"
	}
	return true, ""
}

// MaxPerHost caps the app's jobs of the process type on one host (the
// Mesos colocation rule: "6 processes, no more than 2 on one host").
type MaxPerHost struct{}

func (MaxPerHost) Check(h *HostState, r *Request, g *GroupState) (bool, string) {
	if r.MaxPerHost > 0 && int(g.SameType[h.Index]) >= r.MaxPerHost {
		return false, r.maxReason
	}
	return true, ""
}

// OmniOnePerHost keeps an omni process type to one job per host.
type OmniOnePerHost struct{}

func (OmniOnePerHost) Check(h *HostState, r *Request, g *GroupState) (bool, string) {
	if r.Omni && g.SameFormation[h.Index] > 0 {
		return false, "already ran one"
	}
	return true, ""
}

// Spread prefers hosts with fewer of the formation's jobs, so that losing
// a host loses as few of them as possible.
type Spread struct{}

func (Spread) Score(h *HostState, _ *Request, g *GroupState) float64 {
	return float64(g.SameFormation[h.Index])
}

// LeastLoaded prefers the host with the smallest fraction of its memory
// requested.
type LeastLoaded struct{}

func (LeastLoaded) Score(h *HostState, _ *Request, _ *GroupState) float64 {
	if h.Host.MemoryMB <= 0 {
		return 1
	}
	return float64(h.MemUsed) / float64(h.Host.MemoryMB)
}

// Placer places jobs on a table of hosts and keeps their usage current as
// it goes. Placing n jobs of a request costs one pass over the hosts to
// check and score them, keeping the n best, then O(log n) per job: the
// best host is the root of a heap, and only the host just chosen changes.
type Placer struct {
	pipe  *Pipeline
	Hosts []HostState

	g      GroupState
	heap   []int32
	scores []float64 // len(Rankers) per host
	ties   []uint64
	// reasons counts rejections in a short list rather than a map: a
	// pass rejects thousands of hosts for two or three reasons.
	reasons []reasonCount
}

type reasonCount struct {
	why string
	n   int
}

// NewPlacer returns a placer over hosts, whose Index fields it sets.
func NewPlacer(p *Pipeline, hosts []HostState) *Placer {
	n := len(hosts)
	for i := range hosts {
		hosts[i].Index = i
	}
	return &Placer{
		pipe: p, Hosts: hosts,
		g:      GroupState{SameType: make([]int32, n), SameFormation: make([]int32, n)},
		scores: make([]float64, n*len(p.Rankers)),
		ties:   make([]uint64, n),
	}
}

// Counts are the host indices of a request's live jobs: one entry per
// job, so a host with two jobs appears twice.
type Counts struct {
	SameType, SameFormation []int32
}

func (p *Placer) load(c Counts, d int32) {
	for _, i := range c.SameType {
		p.g.SameType[i] += d
	}
	for _, i := range c.SameFormation {
		p.g.SameFormation[i] += d
	}
}

// check runs the checkers on one host.
func (p *Placer) check(h *HostState, r *Request) (bool, string) {
	if h.Draining {
		return false, "being drained"
	}
	// A host whose data disk is low on space would fail the job's start
	// (its files, its image) or worse, fill the disk; it takes nothing
	// new until space returns, whatever the pipeline.
	if h.Host != nil && h.Host.DiskPressure != "" {
		return false, "low on disk space"
	}
	// Data outranks every policy: a pipeline without VolumeHost still
	// keeps a job with its volumes.
	if ok, why := (VolumeHost{}).Check(h, r, &p.g); !ok {
		return false, why
	}
	for _, c := range p.pipe.Checkers {
		if ok, why := c.Check(h, r, &p.g); !ok {
			return false, why
		}
	}
	return true, ""
}

func (p *Placer) score(i int, r *Request) {
	nr := len(p.pipe.Rankers)
	for k, rk := range p.pipe.Rankers {
		p.scores[i*nr+k] = rk.Score(&p.Hosts[i], r, &p.g)
	}
}

// take records one job of r on host i.
func (p *Placer) take(i int, r *Request) {
	h := &p.Hosts[i]
	h.CPUUsed += r.Resources.CPUMillis
	h.MemUsed += r.Resources.MemoryMB
	p.g.SameType[i]++
	p.g.SameFormation[i]++
}

// Place chooses hosts for up to n jobs of r, given the request's live
// jobs c, and records them in the hosts' usage. salt varies the seeded
// tie-break between requests. When fewer than n fit, why explains the
// rest: every host's reason for refusing one more.
func (p *Placer) Place(r *Request, c Counts, n int, salt uint64) (chosen []int32, why string) {
	if n <= 0 {
		return nil, ""
	}
	p.load(c, 1)
	defer p.load(c, -1)
	// The chosen hosts were counted by take; undo that too, since the
	// caller adds them to its own counts.
	defer func() {
		for _, i := range chosen {
			p.g.SameType[i]--
			p.g.SameFormation[i]--
		}
	}()
	p.reasons = p.reasons[:0]
	// Keep only the n best feasible hosts, in a heap with the worst of
	// them on top. That is exact: each placement changes one host, so
	// while fewer than n are placed some kept host is still untouched,
	// and it outranks every host not kept; and it makes placing a few
	// jobs on many hosts one comparison per host, not a heap of them all.
	p.heap = p.heap[:0]
	for i := range p.Hosts {
		h := &p.Hosts[i]
		if ok, why := p.check(h, r); !ok {
			p.reject(why)
			continue
		}
		p.score(i, r)
		p.ties[i] = mix(h.tie ^ salt)
		switch {
		case len(p.heap) < n:
			p.heap = append(p.heap, int32(i))
			if len(p.heap) == n {
				for k := n/2 - 1; k >= 0; k-- {
					p.downWorst(k)
				}
			}
		case p.less(int32(i), p.heap[0]):
			p.heap[0] = int32(i)
			p.downWorst(0)
		}
	}
	for k := len(p.heap)/2 - 1; k >= 0; k-- {
		p.down(k)
	}
	for len(chosen) < n && len(p.heap) > 0 {
		i := int(p.heap[0])
		chosen = append(chosen, int32(i))
		p.take(i, r)
		if ok, why := p.check(&p.Hosts[i], r); !ok {
			p.reject(why)
			last := len(p.heap) - 1
			p.heap[0] = p.heap[last]
			p.heap = p.heap[:last]
		} else {
			// It is the root: sifting down restores the heap whichever
			// way its score moved.
			p.score(i, r)
		}
		if len(p.heap) > 0 {
			p.down(0)
		}
	}
	if len(chosen) < n {
		m := make(map[string]int, len(p.reasons))
		for _, r := range p.reasons {
			m[r.why] += r.n
		}
		why = Explain(m)
	}
	return chosen, why
}

// PlaceOn places one job of r on host i if it passes the checkers (an
// omni job's slot is its host), given the request's live jobs c. When it
// does not, why is the failing checker's reason, for the caller to count
// with Explain.
func (p *Placer) PlaceOn(r *Request, c Counts, i int) (ok bool, why string) {
	p.load(c, 1)
	defer p.load(c, -1)
	if ok, why = p.check(&p.Hosts[i], r); !ok {
		return false, why
	}
	p.take(i, r)
	p.g.SameType[i]--
	p.g.SameFormation[i]--
	return true, ""
}

func (p *Placer) reject(why string) {
	for i := range p.reasons {
		if p.reasons[i].why == why {
			p.reasons[i].n++
			return
		}
	}
	p.reasons = append(p.reasons, reasonCount{why, 1})
}

// Explain turns rejection counts per reason, one per host, into "3
// hosts: 2 lacked memory, 1 missing tag disk=ssd", commonest reason first.
func Explain(reasons map[string]int) string {
	total := 0
	for _, n := range reasons {
		total += n
	}
	if total == 0 {
		return "no hosts"
	}
	keys := slices.Collect(maps.Keys(reasons))
	slices.SortFunc(keys, func(a, b string) int {
		if d := reasons[b] - reasons[a]; d != 0 {
			return d
		}
		return strings.Compare(a, b)
	})
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s:", total, plural(total, "host", "hosts"))
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, " %d %s", reasons[k], k)
	}
	return b.String()
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func (p *Placer) less(a, b int32) bool {
	nr := len(p.pipe.Rankers)
	for k := 0; k < nr; k++ {
		sa, sb := p.scores[int(a)*nr+k], p.scores[int(b)*nr+k]
		if sa != sb {
			return sa < sb
		}
	}
	if p.ties[a] != p.ties[b] {
		return p.ties[a] < p.ties[b]
	}
	return a < b
}

func (p *Placer) down(i int) { p.siftDown(i, p.less) }

// downWorst is down for the heap of kept hosts, whose root is the worst.
func (p *Placer) downWorst(i int) {
	p.siftDown(i, func(a, b int32) bool { return p.less(b, a) })
}

// siftDown restores the heap below i, where before says which of two
// hosts belongs nearer the root.
func (p *Placer) siftDown(i int, before func(a, b int32) bool) {
	h := p.heap
	n := len(h)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && before(h[r], h[l]) {
			m = r
		}
		if !before(h[m], h[i]) {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}

// mix is splitmix64's finaliser: a cheap way to derive an independent
// tie-break per request from each host's seeded one.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}
