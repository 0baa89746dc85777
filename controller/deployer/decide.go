package deployer

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/scheduler"
)

// View is one deployment and everything its next step is decided from,
// read from the store at one revision. Decide only reads it.
type View struct {
	Deployment api.Deployment
	// App and Release (the new release) are nil when they are gone.
	App     *api.App
	Release *api.Release
	// New and Old are the formations of the new and the old release; nil
	// when absent.
	New, Old *api.Formation
	// Pending is what the scheduler says of the new formation's jobs it
	// has not placed, for a timeout's reason.
	Pending []api.Pending
	// Jobs are the new release's jobs, each with its status.
	Jobs []Job
	// ReleaseRun is the release phase's one-off, once requested.
	ReleaseRun ReleaseRun
}

// Job is a job spec and its status (nil until its host reports).
type Job struct {
	Job    api.Job
	Status *api.JobStatus
}

// ReleaseRun is what the store holds of the release phase's one-off.
type ReleaseRun struct {
	Requested bool           // the request exists
	Pending   string         // why the scheduler has not placed it yet
	Status    *api.JobStatus // its job's status, once reported
}

// Kind is what a step does.
type Kind int

const (
	// Wait writes nothing: the deployment waits for jobs to start, turn
	// healthy or end, which the Note describes.
	Wait Kind = iota
	// Begin moves a pending deployment to running.
	Begin
	// RunRelease requests the release phase's one-off and records it.
	RunRelease
	// Scale writes the new and the old formation in one transaction.
	Scale
	// Complete points the app at the new release, deletes the old
	// formation and marks the deployment complete.
	Complete
	// Fail rolls back and marks the deployment failed with Note.
	Fail
)

func (k Kind) String() string {
	return [...]string{"wait", "begin", "run-release", "scale", "complete", "fail"}[k]
}

// Action is a step. Every write it asks for is committed in one
// transaction.
type Action struct {
	Kind Kind
	// Note is what a Wait waits for, or why a deployment Fails.
	Note string
	// Job, on Fail, is the job whose end failed the deployment.
	Job string
	// OldProcesses, on Begin, records the old formation's counts for a
	// deployment created without them, so a rollback has them.
	OldProcesses map[string]int
	// OneOff is the release phase's request to create (RunRelease); nil
	// when it exists already and only needs recording.
	OneOff *api.OneOff
	// New and Old are the counts to write to the new and the old
	// formation (Scale; New on Complete too); nil leaves one alone.
	New, Old map[string]int
	// Restore, on Fail, puts the old formation back to the deployment's
	// OldProcesses; it is false when the app is gone.
	Restore bool
	// CancelRelease, on Fail, deletes the release phase's request so that
	// its job, still going, is stopped.
	CancelRelease bool
}

// Decide returns the next step of v's deployment at now.
func Decide(v *View, now time.Time) Action {
	d := &v.Deployment
	switch {
	case d.State.Done():
		return Action{Kind: Wait, Note: "done"}
	case v.App == nil:
		// The controller deleted the app and its formations with it:
		// restoring the old one would resurrect the app's jobs.
		a := fail(v, "app deleted")
		a.Restore = false
		return a
	case v.Release == nil:
		return fail(v, "release "+d.NewRelease+" not found")
	case d.State == api.DeployPending:
		a := Action{Kind: Begin}
		if d.OldProcesses == nil && v.Old != nil {
			a.OldProcesses = maps.Clone(v.Old.Processes)
		}
		return a
	}
	targets, why := targetCounts(v)
	if why != "" {
		return fail(v, why)
	}
	timeout := d.Strategy.DeployTimeout()
	// A deployment that waited behind another counts from its start.
	timedOut := now.Sub(cmp.Or(d.StartedAt, d.CreatedAt)) > timeout
	if _, ok := v.Release.Processes[api.ReleaseProcess]; ok {
		if a, done := releasePhase(v, now, timedOut); !done {
			return a
		}
	}
	if a, ok := crashed(v); ok {
		return a
	}
	return rollout(v, targets, timedOut)
}

// targetCounts are the counts the rollout moves the new formation to:
// the deployment's, without the release phase's process type, which no
// formation runs.
func targetCounts(v *View) (map[string]int, string) {
	t := map[string]int{}
	for name, n := range v.Deployment.Processes {
		if name == api.ReleaseProcess {
			continue
		}
		if _, ok := v.Release.Processes[name]; !ok && n > 0 {
			return nil, fmt.Sprintf("release %s has no process type %s", v.Release.ID, name)
		}
		t[name] = max(n, 0)
	}
	return t, ""
}

// ReleaseJobID is the id of a deployment's release phase one-off (and
// of its job): derived from the deployment's id, so that a second pass or
// a new leader finds it rather than starting another. Long ids keep a hash
// of the whole id so that the result stays a unique DNS label.
func ReleaseJobID(deployment string) string {
	const suffix = "-release"
	if len(deployment)+len(suffix) <= 63 {
		return deployment + suffix
	}
	h := uint32(2166136261) // FNV-1a
	for i := 0; i < len(deployment); i++ {
		h = (h ^ uint32(deployment[i])) * 16777619
	}
	base := strings.TrimRight(deployment[:63-len(suffix)-9], "-")
	return fmt.Sprintf("%s-%08x%s", base, h, suffix)
}

// releasePhase decides while the release phase is not over; done reports
// that it is over and succeeded.
func releasePhase(v *View, now time.Time, timedOut bool) (a Action, done bool) {
	d, r := &v.Deployment, &v.ReleaseRun
	id := ReleaseJobID(d.ID)
	switch {
	case d.ReleaseJob == "":
		if timedOut {
			return fail(v, "release phase did not start within "+d.Strategy.DeployTimeout().String()), false
		}
		a := Action{Kind: RunRelease}
		if !r.Requested {
			a.OneOff = &api.OneOff{ID: id, App: d.App, Release: d.NewRelease, ProcessType: api.ReleaseProcess, CreatedAt: now}
		}
		return a, false
	case r.Status != nil && r.Status.State.Terminal():
		if r.Status.State == api.JobComplete {
			return Action{}, true
		}
		a := fail(v, "release phase failed: "+jobEnd(r.Status))
		a.Job = d.ReleaseJob
		return a, false
	case !r.Requested && r.Pending == "" && r.Status == nil:
		// Request, placement and result are all gone: the result
		// outlived its retention while no deployer ran. The rollout only
		// starts after a release phase succeeds, so a new formation
		// already raised says this one did.
		if v.New != nil && total(v.New.Processes) > 0 {
			return Action{}, true
		}
		return fail(v, "release phase job "+d.ReleaseJob+" vanished before reporting a result"), false
	}
	where := "job " + d.ReleaseJob + " not placed yet"
	switch {
	case r.Pending != "":
		where = "job " + d.ReleaseJob + " not placed: " + r.Pending
	case r.Status != nil:
		where = "job " + d.ReleaseJob + " " + string(r.Status.State)
	}
	if timedOut {
		a := fail(v, "release phase did not finish within "+d.Strategy.DeployTimeout().String()+" ("+where+")")
		a.CancelRelease = r.Requested
		return a, false
	}
	return Action{Kind: Wait, Note: "release phase: " + where}, false
}

// crashed fails the deployment as soon as a job of the new release
// crashes or is rejected: waiting out the timeout would only keep the old
// release half scaled down for longer. Jobs created before the deployment
// (a release deployed again) are not its business.
func crashed(v *View) (Action, bool) {
	d := &v.Deployment
	for _, j := range v.Jobs {
		st := j.Status
		if !counted(&j.Job) || j.Job.CreatedAt.Before(d.CreatedAt) || st == nil {
			continue
		}
		if st.State == api.JobFailed || st.State == api.JobRejected {
			a := fail(v, fmt.Sprintf("%s job %s %s: %s", j.Job.ProcessType, j.Job.ID, st.State, jobEnd(st)))
			a.Job = j.Job.ID
			return a, true
		}
	}
	return Action{}, false
}

// counted reports whether a job is one of the formation's: not the
// release phase's, nor a one-off or cron run of the release.
func counted(j *api.Job) bool {
	return j.ProcessType != api.ReleaseProcess && j.Scheduler != scheduler.OneOffScheduler && j.Scheduler != scheduler.CronScheduler
}

// jobEnd says how a job ended, as people read it.
func jobEnd(st *api.JobStatus) string {
	switch {
	case st.Error != "":
		return st.Error
	case st.ExitCode != nil:
		return fmt.Sprintf("exit status %d", *st.ExitCode)
	}
	return "job " + string(st.State)
}

func fail(v *View, why string) Action {
	a := Action{Kind: Fail, Note: why, Restore: true}
	if r := &v.ReleaseRun; r.Requested && (r.Status == nil || !r.Status.State.Terminal()) {
		a.CancelRelease = true
	}
	return a
}

func total(m map[string]int) int {
	n := 0
	for _, c := range m {
		n += max(c, 0)
	}
	return n
}

// sameCounts compares counts, a missing process type counting as zero.
func sameCounts(a, b map[string]int) bool {
	for k, n := range a {
		if b[k] != n {
			return false
		}
	}
	for k, n := range b {
		if a[k] != n {
			return false
		}
	}
	return true
}

func processes(f *api.Formation) map[string]int {
	if f == nil {
		return nil
	}
	return f.Processes
}

func sortedKeys(m map[string]int) []string { return slices.Sorted(maps.Keys(m)) }
