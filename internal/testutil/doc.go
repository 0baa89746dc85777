// Package testutil holds small helpers shared by tests across packages.
package testutil
