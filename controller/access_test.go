package controller_test

import (
	"testing"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/store"
)

func TestAccessRules(t *testing.T) {
	e := newEnv(t)
	c := ctx(t)
	for _, name := range []string{"victim", "mallory"} {
		if _, err := e.cli.CreateApp(c, api.CreateAppRequest{Name: name}); err != nil {
			t.Fatal(err)
		}
	}
	// Bad input changes nothing.
	_, err := e.cli.AllowAccess(c, "victim", "ghost")
	wantCode(t, err, api.ErrCodeNotFound, 404)
	_, err = e.cli.AllowAccess(c, "victim", "victim")
	wantCode(t, err, api.ErrCodeInvalid, 422)
	_, err = e.cli.AllowAccess(c, "victim", "Not_An_App")
	wantCode(t, err, api.ErrCodeInvalid, 422)
	wantCode(t, e.cli.DenyAccess(c, "victim", "mallory"), api.ErrCodeNotFound, 404)
	if rules, err := e.cli.AccessRules(c, ""); err != nil || len(rules) != 0 {
		t.Fatalf("rules after bad input: %+v, %v", rules, err)
	}

	if _, err := e.cli.AllowAccess(c, "victim", "mallory"); err != nil {
		t.Fatal(err)
	}
	_, err = e.cli.AllowAccess(c, "victim", "mallory")
	wantCode(t, err, api.ErrCodeConflict, 409)
	rules, err := e.cli.AccessRules(c, "victim")
	if err != nil || len(rules) != 1 || rules[0].From != "mallory" || rules[0].App != "victim" {
		t.Fatalf("rules: %+v, %v", rules, err)
	}
	if rules, _ := e.cli.AccessRules(c, "mallory"); len(rules) != 0 {
		t.Fatalf("rules into mallory: %+v", rules)
	}
	if err := e.cli.DenyAccess(c, "victim", "mallory"); err != nil {
		t.Fatal(err)
	}

	// A resource's rule goes with its attachment, not by hand.
	key, _ := store.Key(store.NetAccessPrefix, "victim", "mallory")
	if _, err := store.Create(c, e.ctl.Client, key, api.AccessRule{App: "victim", From: "mallory", Resource: "db"}); err != nil {
		t.Fatal(err)
	}
	wantCode(t, e.cli.DenyAccess(c, "victim", "mallory"), api.ErrCodeConflict, 409)

	// Deleting an app removes the rules it is part of.
	if err := e.cli.DeleteApp(c, "mallory"); err != nil {
		t.Fatal(err)
	}
	if rules, _ := e.cli.AccessRules(c, ""); len(rules) != 0 {
		t.Fatalf("rules after deleting mallory: %+v", rules)
	}
}
