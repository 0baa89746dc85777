// Package appliance is pier's datastore framework: a Provider per kind of
// datastore (PostgreSQL today) says how a resource's member runs, as the
// process type of an ordinary system app with its data on a volume, and
// how to make, check and drop what an attached app needs (a database, a
// login role, the URL it gets in its environment). The controller's
// resource loop drives providers; providers hold no state of their own
// and never run anything themselves, so a member is just a job to the
// rest of the cluster: scheduled, health-checked, logged and restarted
// like any other.
package appliance
