package controller

import "github.com/pierpaas/pier/api"

// route is one endpoint: what serves it and what the OpenAPI description
// says of it. The description is generated from this table and the wire
// types, so it cannot drift from what is served.
type route struct {
	pattern string // "METHOD /path/{param}"
	h       handlerFunc
	summary string
	req     any // request body type, or nil
	resp    any // success body type, or nil for none
	status  int // success status
}

func (c *Controller) routes() []route {
	return []route{
		{"GET /v1/apps", c.listApps, "List apps", nil, []api.App{}, 200},
		{"POST /v1/apps", c.createApp, "Create an app", api.CreateAppRequest{}, api.App{}, 201},
		{"GET /v1/apps/{app}", c.getApp, "Show an app", nil, api.App{}, 200},
		{"PATCH /v1/apps/{app}", c.updateApp, "Change an app's meta or deploy strategy", api.UpdateAppRequest{}, api.App{}, 200},
		{"DELETE /v1/apps/{app}", c.deleteApp, "Delete an app, its jobs, releases, formations and routes", nil, nil, 204},
		{"POST /v1/apps/{app}/rename", c.renameApp, "Rename an app: its releases, formations, routes and history move to the new name", api.RenameAppRequest{}, api.App{}, 200},
		{"POST /v1/apps/{app}/restart", c.restart, "Replace the app's jobs (of a process type, or one job) one at a time, each new one healthy before the old one stops", api.RestartRequest{}, api.RestartResult{}, 202},
		{"GET /v1/apps/{app}/releases", c.listReleases, "List releases, newest first", nil, []api.Release{}, 200},
		{"POST /v1/apps/{app}/releases", c.createRelease, "Create a release and deploy it", api.CreateReleaseRequest{}, api.ReleaseResult{}, 201},
		{"GET /v1/apps/{app}/releases/{version}", c.getRelease, "Show a release (v3, 3 or its id)", nil, api.Release{}, 200},
		{"GET /v1/apps/{app}/env", c.getEnv, "Show the current release's config vars", nil, map[string]string{}, 200},
		{"PATCH /v1/apps/{app}/env", c.setEnv, "Set (string) or unset (null) config vars: a new release", map[string]*string{}, api.ReleaseResult{}, 201},
		{"POST /v1/apps/{app}/rollback", c.rollback, "Release an older release's artifact and config again", api.RollbackRequest{}, api.ReleaseResult{}, 201},
		{"PATCH /v1/apps/{app}/resources", c.resize, "Change process types' memory and CPU: a new release", map[string]api.Resources{}, api.ReleaseResult{}, 201},
		{"GET /v1/apps/{app}/formation", c.getFormation, "Show the job counts of the current release", nil, api.AppFormation{}, 200},
		{"PATCH /v1/apps/{app}/formation", c.scale, "Scale process types", api.ScaleRequest{}, api.AppFormation{}, 200},
		{"PUT /v1/apps/{app}/formation", c.scale, "Scale process types", api.ScaleRequest{}, api.AppFormation{}, 200},
		{"GET /v1/apps/{app}/jobs", c.listJobs, "List jobs, and the jobs waiting for a host with why", nil, api.JobList{}, 200},
		{"GET /v1/apps/{app}/jobs/{id}", c.getJob, "Show a job", nil, api.AppJob{}, 200},
		{"DELETE /v1/apps/{app}/jobs/{id}", c.killJob, "Stop a job (a service job is replaced)", nil, nil, 202},
		{"POST /v1/apps/{app}/run", c.run, "Run a one-off job", api.RunRequest{}, api.AppJob{}, 201},
		{"GET /v1/apps/{app}/jobs/{id}/output", c.jobOutput, "The last lines of a job's output (?lines=, default 20), from its host", nil, []api.LogLine{}, 200},
		{"GET /v1/apps/{app}/jobs/{id}/attach", c.attach, "Attach to a one-off job's stdio (Upgrade: " + api.AttachUpgrade + ")", nil, nil, 101},
		{"GET /v1/apps/{app}/deployments", c.listDeployments, "List deployments, newest first", nil, []api.Deployment{}, 200},
		{"GET /v1/apps/{app}/deployments/{id}", c.getDeployment, "Show a deployment (v3 or its id)", nil, api.Deployment{}, 200},
		{"GET /v1/apps/{app}/routes", c.listRoutes, "List an app's routes (TLS private keys are never returned)", nil, []api.Route{}, 200},
		{"POST /v1/apps/{app}/routes", c.createRoute, "Add a route to a process type of the app (the controller picks the id, and a free tcp port when port is 0)", api.Route{}, api.Route{}, 201},
		{"DELETE /v1/apps/{app}/routes/{id}", c.deleteRoute, "Remove a route", nil, nil, 204},
		{"POST /v1/apps/{app}/builds", c.createBuild, "Build a gzipped source tar (the body; ?source= names it) and deploy it; answers with BuildEvent lines", nil, api.BuildEvent{}, 200},
		{"GET /v1/apps/{app}/builds", c.listBuilds, "List builds, newest first", nil, []api.Build{}, 200},
		{"GET /v1/apps/{app}/builds/{id}", c.getBuild, "Show a build (or latest)", nil, api.Build{}, 200},
		{"GET /v1/apps/{app}/builds/{id}/output", c.buildOutput, "A finished build's output (text)", nil, nil, 200},
		{"GET /v1/hosts", c.listHosts, "List the live hosts with what their jobs reserve of them", nil, []api.HostInfo{}, 200},
		{"PUT /v1/hosts/{id}/drain", c.drainHost, "Drain a host for maintenance: nothing new goes there, and its service jobs move elsewhere", nil, nil, 204},
		{"DELETE /v1/hosts/{id}/drain", c.undrainHost, "End a host's drain: it takes jobs again", nil, nil, 204},
		{"GET /v1/volumes", c.listVolumes, "List the volumes (?app=: of one app) with their hosts, states and the jobs that use them", nil, []api.VolumeInfo{}, 200},
		{"DELETE /v1/volumes/{id}", c.deleteVolume, "Remove a volume and its data (409 while a job that has not ended uses it)", nil, api.VolumeInfo{}, 200},
		{"GET /v1/resources", c.listResources, "List the resources (datastores) with their states and attachments", nil, []api.Resource{}, 200},
		{"POST /v1/resources", c.createResource, "Provision a resource (type postgres), attached to app if given; the resource loop does the work", api.CreateResourceRequest{}, api.Resource{}, 202},
		{"GET /v1/resources/{name}", c.getResource, "Show a resource: its record, host, volume, member and what its server says", nil, api.ResourceInfo{}, 200},
		{"DELETE /v1/resources/{name}", c.deleteResource, "Remove a resource, its system app, jobs, volume and data (409 while attached, unless ?confirm=NAME)", nil, api.Resource{}, 202},
		{"POST /v1/resources/{name}/attachments", c.attachResource, "Attach a resource to an app: a database and role of its own, and DATABASE_URL in a new release", api.AttachRequest{}, api.Resource{}, 202},
		{"DELETE /v1/resources/{name}/attachments/{app}", c.detachResource, "Detach a resource from an app: a release without DATABASE_URL, the role dropped (the data stays)", nil, api.Resource{}, 202},
		{"POST /v1/resources/{name}/backups", c.captureBackup, "Capture a backup of a database of the resource (the attached app's): a dump in the blobstore, made by a one-off job", api.CaptureRequest{}, api.Backup{}, 202},
		{"POST /v1/resources/{name}/restores", c.restoreBackup, "Start a one-off job that loads a backup into a database of the resource (attach to it for its output)", api.RestoreRequest{}, api.AppJob{}, 201},
		{"PUT /v1/resources/{name}/backup-schedule", c.scheduleBackups, "Capture a backup every day at a time, kept some days", api.ScheduleRequest{}, api.Resource{}, 200},
		{"DELETE /v1/resources/{name}/backup-schedule", c.scheduleBackups, "Stop the daily backups (those made are kept until they expire)", nil, api.Resource{}, 200},
		{"GET /v1/backups", c.listBackups, "List backups, newest first (?resource=NAME: of one resource)", nil, []api.Backup{}, 200},
		{"GET /v1/backups/{id}", c.getBackup, "Show a backup", nil, api.Backup{}, 200},
		{"DELETE /v1/backups/{id}", c.deleteBackup, "Delete a backup; its dump goes with the next garbage collection", nil, nil, 204},
		{"GET /v1/backups/{id}/download", c.downloadBackup, "A backup's dump (pg_dump's custom format for postgres)", nil, nil, 200},
		{"POST /v1/resources/{name}/credentials/rotate", c.rotateCredentials, "New credentials for the attached apps (or one): a new login, the apps released with it, then the old one retired", api.RotateRequest{}, api.Resource{}, 202},
		{"POST /v1/resources/{name}/psql", c.psql, "Start a one-off job running psql against the resource (attach to it as to pier run's)", api.PsqlRequest{}, api.AppJob{}, 201},
		{"GET /v1/servers", c.listServers, "List the cluster's servers (each answers the whole API)", nil, []api.Server{}, 200},
		{"GET /v1/status", c.clusterStatus, "The cluster's health: the store, servers (their disks), hosts, and a sentence for each problem (?self=1: this server's own view only)", nil, api.ClusterStatus{}, 200},
		{"GET /v1/nodes", c.listNodes, "List the running pier daemons with their binaries' versions and digests", nil, []api.Node{}, 200},
		{"POST /v1/upgrades", c.createUpgrade, "Upgrade pier on every node, one at a time, to a binary uploaded to the blobstore; rolled back on the first failure", api.UpgradeRequest{}, api.Upgrade{}, 201},
		{"GET /v1/upgrades", c.listUpgrades, "List upgrades of pier, newest first", nil, []api.Upgrade{}, 200},
		{"GET /v1/upgrades/{id}", c.getUpgrade, "Show an upgrade of pier and each node's step", nil, api.Upgrade{}, 200},
		{"GET /v1/cluster/backup", c.clusterBackup, "A backup of the whole cluster (application/x-tar: etcd snapshot, CA, kept blobs, manifest with checksums); a secret", nil, nil, 200},
		{"GET /v1/cluster/backup-schedules", c.listClusterBackupSchedules, "List the schedules of cluster backups, with what each did last and when it is due next", nil, []api.ClusterBackupSchedule{}, 200},
		{"PUT /v1/cluster/backup-schedules/{name}", c.putClusterBackupSchedule, "Back the cluster up on a schedule (every DURATION or daily at HH:MM) into a directory on the servers, keeping the newest N", api.ClusterBackupScheduleRequest{}, api.ClusterBackupSchedule{}, 200},
		{"DELETE /v1/cluster/backup-schedules/{name}", c.deleteClusterBackupSchedule, "Stop a schedule of cluster backups (the files made stay)", nil, nil, 204},
		{"GET /v1/git", c.gitInfo, "Where to git push: the SSH receiver's address and host key", nil, api.GitInfo{}, 200},
		{"GET /v1/ssh-keys", c.listSSHKeys, "List the SSH keys that may git push", nil, []api.SSHKey{}, 200},
		{"POST /v1/ssh-keys", c.addSSHKey, "Register an SSH public key for git push", api.AddSSHKeyRequest{}, api.SSHKey{}, 201},
		{"DELETE /v1/ssh-keys/{id}", c.removeSSHKey, "Remove an SSH key (by id, fingerprint or comment)", nil, nil, 204},
		{"GET /v1/apps/{app}/logs", c.appLogs, "Stream the app's log lines (application/x-ndjson of AppLogLine; ?lines=N&follow=true&type=T&job=J)", nil, api.AppLogLine{}, 200},
		{"GET /v1/access", c.listAccess, "List the access rules between apps (?app=APP: the rules into APP)", nil, []api.AccessRule{}, 200},
		{"PUT /v1/apps/{app}/access/{from}", c.allowAccess, "Let the jobs of app {from} open connections to the app's jobs", nil, api.AccessRule{}, 201},
		{"DELETE /v1/apps/{app}/access/{from}", c.denyAccess, "Remove a rule that lets {from} reach the app", nil, nil, 204},
		{"GET /v1/apps/{app}/drains", c.listDrains, "List the app's syslog drains", nil, []api.Drain{}, 200},
		{"POST /v1/apps/{app}/drains", c.createDrain, "Add a syslog drain (syslog:// or syslog+tls://HOST:PORT, RFC 5424)", api.CreateDrainRequest{}, api.Drain{}, 201},
		{"DELETE /v1/apps/{app}/drains/{id}", c.deleteDrain, "Remove a syslog drain (by id or URL)", nil, nil, 204},
		{"GET /v1/events", c.events, "Stream events (text/event-stream of Event; ?app=, Last-Event-ID resumes)", nil, api.Event{}, 200},
		{"GET /v1/api-keys", c.listKeys, "List API keys", nil, []api.APIKey{}, 200},
		{"POST /v1/api-keys", c.createKey, "Create an API key (its secret is shown once)", struct {
			Name string `json:"name"`
		}{}, api.NewAPIKey{}, 201},
		{"DELETE /v1/api-keys/{id}", c.deleteKey, "Revoke an API key", nil, nil, 204},
	}
}
