// Package logs gathers every app's output in one place: host agents ship
// each job's lines (read back from the files the job's shim writes, see
// host/joblog) to the log aggregator, which runs on the servers, one
// active at a time (the oldest instance of the discovery service
// "pier-logs"). The aggregator keeps a ring buffer per app bounded by
// lines and bytes, answers queries by app, process type and job, streams
// new lines to followers, adds the platform's own lines (deploys, scaling,
// crashes, health checks, and routers' access lines through RouterLines)
// and forwards everything to the app's syslog drains (RFC 5424 over TCP or
// TLS). Nothing on the way can make a job wait or memory grow
// without bound: the shipper reads files and so only falls behind, the
// files' rotation bounds how far, and what is lost shows up as a counted
// notice line. A restarted or moved aggregator recovers what the hosts
// still hold, because a host resumes from what the aggregator it talks to
// says it has, and the aggregator drops lines it already has by (job,
// line number).
package logs
