// Package procfile reads a Heroku Procfile ("name: command" lines) and
// turns it into a release's process types. It is stricter than Heroku about
// names, which must be lower-case DNS labels because pier puts them in job
// ids and service names ("web.hello"), and it refuses rather than guesses
// on anything ambiguous (a duplicate name, an empty command), naming the
// line. Commands stay shell text: they run under sh inside the app's
// container, where $PORT and the app's environment are defined, never on
// a server.
package procfile
