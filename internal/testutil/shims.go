package testutil

import "github.com/pierpaas/pier/host/shim"

// KillShims kills, by pid, every `pier shim` supervising a job under
// jobsDir: test cleanup that must work even when the agent is gone.
func KillShims(jobsDir string) { shim.KillAll(jobsDir) }
