// Package appjson reads app.json, the manifest an app carries in its
// source tree, in Heroku's schema with Dokku's extensions (formation,
// scripts, cron, healthchecks) and pier's own placement keys under "pier".
// It turns what the manifest declares into the process types, formation
// counts and scripts of a release. Both sides of a build use it: the
// builder, so that a mistake fails the push naming the line and column of
// app.json, and the controller, which never trusts what a build job
// reports and parses the same text again. Parsing is strict: an unknown
// key, a value of the wrong type, a bad schedule or a reference to a
// process type the app does not have is an error that says where it is;
// Heroku's keys that pier does not act on (env, addons, buildpacks ...)
// are accepted with a warning, since a manifest written for Heroku should
// still deploy.
package appjson
