// Package cliconfig is the pier CLI's idea of where it is: which clusters
// it knows (URL, API key, and the CA that signed the cluster's certificate),
// which one is the default, and which app a command is about. Clusters live
// in $XDG_CONFIG_HOME/pier/config.json, written 0600 and atomically since
// it holds API keys; the environment (PIER_URL, PIER_KEY, PIER_CA,
// PIER_APP) overrides it so CI needs no file at all; and the app, as with
// Heroku, defaults to the one named by the checkout's git remote "pier".
// Everything that decides is a pure function of its inputs (the config, a
// getenv function, a directory), so the CLI's precedence rules are
// table-tested here rather than through cobra.
package cliconfig
