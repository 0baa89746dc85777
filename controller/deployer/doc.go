// Package deployer moves an app from one release to another (DESIGN.md,
// "Deployer"). Every server runs a Loop; the one elected under
// ElectionPrefix drives each unfinished deployment one step per pass:
// pending to running, then the release phase (the release's "release"
// process type run once as a one-off job), then a rollout that raises the
// new release's formation by the strategy's step and lowers the old one
// as new jobs turn healthy, and finally one transaction that points the
// app at the new release, deletes the old formation and marks the
// deployment complete. A crash of a new job, a failed release phase or a
// deployment past its timeout rolls back instead: the old formation is put
// back and the new one deleted. Each step is decided by Decide, a pure
// function of one deployment's View read at one store revision, and
// committed in a transaction guarded by the revisions it was decided from
// and by the leader's key, so a new leader continues where the old one
// stopped (the progress is in the formations) and a paused ex-leader
// writes nothing.
package deployer
