// Package agent is the host agent: it joins the cluster with a host token,
// keeps a Host record alive on its etcd lease, watches the jobs assigned to
// it, converges local containers to their desired state through one shim
// per job, and reports each job's observed state. It keeps what it
// launched in a bbolt file, so a killed and restarted agent re-adopts its
// running jobs (same processes, no restart) and reports jobs that ended
// while it was away with their real exit status.
package agent
