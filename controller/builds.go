package controller

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/scheduler"
	"github.com/pierpaas/pier/store"
)

// DefaultBuildResources bound a build job unless Config.BuildResources
// says otherwise: a build must not take its host down with it. The disk
// is a tmpfs charged to the job's memory, so memory covers it too.
var DefaultBuildResources = api.Resources{CPUMillis: 1000, MemoryMB: 2048, DiskMB: 2048, PIDs: 2048}

// buildEnvPassthrough are the server's environment variables a build job
// inherits: where package registries are, which builds need when the
// cluster has no open internet.
var buildEnvPassthrough = []string{
	"GOPROXY", "GOSUMDB", "GONOSUMDB", "GOPRIVATE", "GOFLAGS", "GOTOOLCHAIN",
	"npm_config_registry", "NPM_CONFIG_REGISTRY", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL",
	"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
}

// maxBuildOutput bounds the output kept with a build (the pusher sees all
// of it live).
const maxBuildOutput = 4 << 20

// Build builds app from a gzipped tar of its source tree and, when the
// build succeeds, releases the slug and waits for its deployment. source
// says what the tree is (a commit, "upload"). Progress goes to out as it
// happens; the error says why the build or the deployment failed, and
// then the app's current release keeps serving.
func (c *Controller) Build(ctx context.Context, app, source string, src io.Reader, out io.Writer) (api.Build, *api.ReleaseResult, error) {
	a, _, err := c.loadApp(ctx, app)
	if err != nil {
		return api.Build{}, nil, err
	}
	if c.Blobs == nil {
		return api.Build{}, nil, api.Errorf(api.ErrCodeUnavailable, "this server has no blobstore")
	}
	srcBlob, err := c.Blobs.Put(ctx, src, "")
	if err != nil {
		return api.Build{}, nil, fmt.Errorf("store the source: %w", err)
	}
	env, err := c.currentEnv(ctx, a)
	if err != nil {
		return api.Build{}, nil, err
	}
	b := api.Build{ID: newID(app, "build"), App: app, State: api.BuildPending, Source: source,
		SourceSHA256: srcBlob.SHA256, CreatedAt: time.Now().UTC()}
	b.JobID = b.ID
	token := randomHex(32)
	sess, err := c.buildSession() // see builds_orphans.go
	if err != nil {
		return b, nil, err
	}
	defer sess.Close()
	if _, err := store.Txn().Create(store.BuildsPrefix+b.ID, b).
		Create(store.BuildSecretsPrefix+b.ID, buildSecret{TokenSHA256: hashHex(token)}, store.WithLease(sess.Lease())).
		Commit(ctx, c.Client); err != nil {
		return b, nil, err
	}
	log := &boundedBuffer{max: maxBuildOutput}
	out = io.MultiWriter(out, log)
	b, res, err := c.runBuild(ctx, a, b, env, token, srcBlob.SHA256, out)
	if err != nil {
		fmt.Fprintf(out, " !     %v\n", err)
	}
	// The record is finished even when the caller has gone away.
	c.finishBuild(context.WithoutCancel(ctx), &b, res, err, log.Bytes())
	return b, res, err
}

// runBuild runs the build job, then releases and deploys its slug.
func (c *Controller) runBuild(ctx context.Context, app api.App, b api.Build, env map[string]string, token, srcDigest string, out io.Writer) (api.Build, *api.ReleaseResult, error) {
	res := c.BuildResources
	if res == (api.Resources{}) {
		res = DefaultBuildResources
	}
	o := api.OneOff{ID: b.JobID, App: app.Name, Args: []string{api.PierBinary, "slugbuild"},
		Artifact: &api.Artifact{Type: "slug", URI: c.blobURI(srcDigest), SHA256: srcDigest},
		Env:      c.buildJobEnv(b.ID, token, env), Resources: res, Writable: true, ControlPlane: true, CreatedAt: time.Now().UTC()}
	if err := o.Validate(); err != nil {
		return b, nil, err
	}
	if _, err := store.Create(ctx, c.Client, scheduler.OneOffPrefix+o.ID, o); err != nil {
		return b, nil, err
	}
	fmt.Fprintf(out, "-----> Building %s (%s) in job %s\n", app.Name, b.Source, o.ID)
	hostID, err := c.waitPlaced(ctx, app.Name, o.ID)
	if err != nil {
		return b, nil, fmt.Errorf("the build could not start: %w", err)
	}
	b.State = api.BuildRunning
	c.updateBuild(ctx, b)
	// The output from its first line, also when the job has ended
	// already: a fast build can be over before we get here.
	followed := c.followJob(ctx, hostID, o.ID, out)
	st, err := c.waitEnded(ctx, o.ID, 30*time.Second)
	if err != nil {
		return b, nil, err
	}
	if st.State != api.JobComplete {
		if !followed {
			c.showJobTail(ctx, app.Name, o.ID, out)
		}
		return b, nil, fmt.Errorf("build failed: %s", jobFailure(st))
	}
	saved, _, err := store.Get[api.Build](ctx, c.Client, store.BuildsPrefix+b.ID)
	if err != nil {
		return b, nil, err
	}
	b.Slug, b.CacheSHA256, b.Buildpacks = saved.Slug, saved.CacheSHA256, saved.Buildpacks
	result, err := c.buildResult(ctx, b.ID)
	if err != nil || b.Slug == nil {
		return b, nil, errors.New("build failed: the builder exited without reporting a slug")
	}
	rr, err := c.releaseSlug(ctx, app.Name, *b.Slug, result)
	if err != nil {
		return b, nil, fmt.Errorf("release: %w", err)
	}
	b.Release = rr.Release.ID
	fmt.Fprintf(out, "-----> Released v%d; deploying\n", rr.Release.Version)
	d, err := c.waitDeployment(ctx, rr.Deployment.ID)
	if err != nil {
		return b, &rr, err
	}
	rr.Deployment = d
	if d.State != api.DeployComplete {
		c.showFailedJob(ctx, d, out)
		return b, &rr, fmt.Errorf("deployment of v%d %s: %s; the previous release keeps serving", d.Version, d.State, d.Reason)
	}
	fmt.Fprintf(out, "=====> %s v%d deployed\n", app.Name, d.Version)
	if result.AppJSON != "" {
		// Checked by releaseSlug already.
		if m, _, err := releaseManifest(result); err == nil {
			first, rel := app.Release == "", rr.Release
			if first && len(m.Resources()) > 0 {
				v, err := c.provisionAddons(ctx, app.Name, m, out)
				if err != nil {
					return b, &rr, err
				}
				if rel, err = c.release(ctx, app.Name, api.ReleaseID(app.Name, v)); err != nil {
					return b, &rr, err
				}
			}
			if err := c.runPostdeploy(ctx, rel, m, first, out); err != nil {
				return b, &rr, err
			}
		}
	}
	return b, &rr, nil
}

// releaseSlug makes the app's next release from a built slug: the
// process types the build found, run by the slug runner, keeping the
// resources and placement a process type of the same name had before,
// except for what the source's app.json declares (see releaseManifest).
func (c *Controller) releaseSlug(ctx context.Context, app string, slug api.Artifact, result api.BuildResult) (api.ReleaseResult, error) {
	art, err := c.resolveArtifact(ctx, slug)
	if err != nil {
		return api.ReleaseResult{}, err
	}
	if len(result.ProcessTypes) == 0 {
		return api.ReleaseResult{}, invalid("the build found no process types: add a Procfile (web: COMMAND)")
	}
	manifest, cmds, err := releaseManifest(result)
	if err != nil {
		return api.ReleaseResult{}, err
	}
	procs := slugProcessTypes(app, cmds)
	if err := c.checkProcesses(procs); err != nil {
		return api.ReleaseResult{}, err
	}
	var initial map[string]int
	if manifest != nil {
		initial = manifest.Quantities()
	}
	return c.newReleaseCounts(ctx, app, func(base, next *api.Release) error {
		next.Artifact = &art
		next.Processes = procs
		next.Env = map[string]string{}
		if base != nil {
			maps.Copy(next.Env, base.Env)
			for name, p := range procs {
				if old, ok := base.Processes[name]; ok {
					p.Resources, p.Tags, p.MaxPerHost, p.Omni = old.Resources, old.Tags, old.MaxPerHost, old.Omni
					p.Restart, p.StopGrace, p.Schedule = cmpOr(old.Restart, p.Restart), old.StopGrace, old.Schedule
					procs[name] = p
				}
			}
		}
		if manifest != nil {
			if err := manifest.Configure(procs); err != nil {
				return invalid("%v", err)
			}
		}
		for k, v := range result.ConfigVars {
			if _, set := next.Env[k]; !set && validEnvKey(k) {
				next.Env[k] = v
			}
		}
		return nil
	}, initial)
}

func cmpOr[T comparable](a, b T) T {
	var zero T
	if a != zero {
		return a
	}
	return b
}

// finishBuild records how a build ended, with its output.
func (c *Controller) finishBuild(ctx context.Context, b *api.Build, res *api.ReleaseResult, buildErr error, output []byte) {
	b.State, b.FinishedAt = api.BuildSucceeded, time.Now().UTC()
	if buildErr != nil {
		b.State, b.Error = api.BuildFailed, buildErr.Error()
	}
	if blob, err := c.Blobs.Put(ctx, strings.NewReader(string(output)), ""); err == nil {
		b.OutputSHA256 = blob.SHA256
	}
	if saved, _, err := store.Get[api.Build](ctx, c.Client, store.BuildsPrefix+b.ID); err == nil {
		// The builder's own reports (slug, cache) are kept as they are.
		b.Slug, b.CacheSHA256, b.Buildpacks = saved.Slug, saved.CacheSHA256, saved.Buildpacks
	}
	if err := c.updateBuild(ctx, *b); err != nil {
		c.Log.Error("record build", "build", b.ID, "err", err)
	}
	// The token dies with the build.
	store.Delete(ctx, c.Client, store.BuildSecretsPrefix+b.ID)
	c.Log.Info("build finished", "app", b.App, "build", b.ID, "state", b.State, "err", b.Error)
}

// updateBuild rewrites a build's fields this side owns, keeping what the
// builder reported meanwhile.
func (c *Controller) updateBuild(ctx context.Context, b api.Build) error {
	for {
		saved, rev, err := store.Get[api.Build](ctx, c.Client, store.BuildsPrefix+b.ID)
		if err != nil {
			return err
		}
		saved.State, saved.Error, saved.Release, saved.OutputSHA256, saved.FinishedAt = b.State, b.Error, b.Release, b.OutputSHA256, b.FinishedAt
		_, err = store.Update(ctx, c.Client, store.BuildsPrefix+b.ID, saved, rev)
		if !errors.Is(err, store.ErrConflict) {
			return err
		}
	}
}

// currentEnv is the app's current config vars.
func (c *Controller) currentEnv(ctx context.Context, a api.App) (map[string]string, error) {
	if a.Release == "" {
		return map[string]string{}, nil
	}
	r, err := c.release(ctx, a.Name, a.Release)
	if err != nil {
		return nil, err
	}
	return r.Env, nil
}

// buildJobEnv is a build job's environment (see api/build.go).
func (c *Controller) buildJobEnv(id, token string, config map[string]string) map[string]string {
	cfg, _ := json.Marshal(config)
	env := map[string]string{
		api.BuildEnvID: id, api.BuildEnvToken: token, api.BuildEnvConfig: string(cfg),
		api.BuildEnvURL: strings.TrimSuffix(c.BlobURL, "/") + "/v1/builds/" + id,
		api.BuildEnvCA:  string(c.BuildCA),
	}
	if u := config[api.BuildpackURLVar]; u != "" {
		env[api.BuildpackURLVar] = u
	}
	for _, k := range buildEnvPassthrough {
		if v, ok := os.LookupEnv(k); ok {
			env[k] = v
		}
	}
	return env
}

// appBuilds lists an app's builds, newest first.
func (c *Controller) appBuilds(ctx context.Context, app string) ([]api.Build, error) {
	items, _, err := store.List[api.Build](ctx, c.Client, store.BuildsPrefix)
	if err != nil {
		return nil, err
	}
	out := []api.Build{}
	for _, it := range items {
		if it.Value.App == app {
			out = append(out, it.Value)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.After(out[j].CreatedAt) })
	return out, c.settleOrphans(ctx, out)
}

// newID makes an id "<app>-<kind>-<random>" that is a DNS label.
func newID(app, kind string) string {
	const digits = "0123456789abcdefghijklmnopqrstuvwxyz"
	var b [10]byte
	rand.Read(b[:])
	for i := range b {
		b[i] = digits[int(b[i])%len(digits)]
	}
	suffix := "-" + kind + "-" + string(b[:])
	base := app
	if len(base) > 63-len(suffix) {
		base = base[:63-len(suffix)]
	}
	return strings.TrimRight(base, "-") + suffix
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func hashHex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// boundedBuffer keeps the first max bytes written to it.
type boundedBuffer struct {
	max       int
	buf       []byte
	truncated bool
}

func (b *boundedBuffer) Write(p []byte) (int, error) {
	room := b.max - len(b.buf)
	if len(p) > room {
		b.buf, b.truncated = append(b.buf, p[:max(room, 0)]...), true
	} else {
		b.buf = append(b.buf, p...)
	}
	return len(p), nil
}

func (b *boundedBuffer) Bytes() []byte {
	if b.truncated {
		return append(b.buf, "\n[output truncated]\n"...)
	}
	return b.buf
}

// showFailedJob writes the last lines of the job that failed a
// deployment, as Heroku shows a crashed dyno's output: the reason is
// usually there. Best effort: a job whose host is gone has no lines to
// show.
func (c *Controller) showFailedJob(ctx context.Context, d api.Deployment, out io.Writer) {
	if d.FailedJob != "" {
		c.showJobTail(ctx, d.App, d.FailedJob, out)
	}
}

// showJobTail writes the last lines of app's job id, if its host still
// has them.
func (c *Controller) showJobTail(ctx context.Context, app, id string, out io.Writer) {
	lines, err := c.jobTail(ctx, app, id, 20)
	if err != nil || len(lines) == 0 {
		return
	}
	fmt.Fprintf(out, " !     The last lines of job %s:\n", id)
	for _, l := range lines {
		fmt.Fprintf(out, "       %s\n", l.Text)
	}
}

// followJob copies a job's output to out from its first line until the
// job ends, and reports whether it could.
func (c *Controller) followJob(ctx context.Context, hostID, id string, out io.Writer) bool {
	hc, err := c.hostClient(ctx, hostID)
	if err == nil {
		err = hc.LogsFrom(ctx, id, 0, true, func(l api.LogLine) error {
			_, err := io.WriteString(out, l.Text+"\n")
			return err
		})
		hc.Close()
	}
	if err != nil && ctx.Err() == nil {
		// The job goes on without us watching; its end is in the store.
		fmt.Fprintf(out, " !     cannot follow the output of job %s: %v\n", id, err)
	}
	return err == nil
}
