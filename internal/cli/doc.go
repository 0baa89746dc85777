// Package cli holds pier's command table: one file per command group, each
// a thin layer that parses flags and calls the packages that do the work.
package cli
