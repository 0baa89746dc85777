package gitreceive

import (
	"os"
	"testing"
)

var readFile = os.ReadFile

func TestParseCommand(t *testing.T) {
	for _, tc := range []struct {
		cmd, service, app string
	}{
		{"git-receive-pack 'myapp.git'", serviceReceive, "myapp"},
		{"git-receive-pack '/myapp.git'", serviceReceive, "myapp"},
		{"git-receive-pack myapp.git", serviceReceive, "myapp"},
		{"git-receive-pack /my-app-2.git", serviceReceive, "my-app-2"},
		{"git-upload-pack 'myapp.git'", serviceUpload, "myapp"},
		{"git-upload-pack 'myapp'", serviceUpload, "myapp"},
		{"git-receive-pack", "", ""},
		{"git-receive-pack ", "", ""},
		{"git-receive-pack ''", "", ""},
		{"git-receive-pack '.git'", "", ""},
		{"git-receive-pack  'myapp.git'", "", ""},
		{"git-receive-pack 'myapp.git' x", "", ""},
		{"git-receive-pack 'myapp.git';ls", "", ""},
		{"git-receive-pack 'my app.git'", "", ""},
		{"git-receive-pack '../myapp.git'", "", ""},
		{"git-receive-pack 'a/myapp.git'", "", ""},
		{"git-receive-pack '//myapp.git'", "", ""},
		{"git-receive-pack '~/myapp.git'", "", ""},
		{"git-receive-pack 'MyApp.git'", "", ""},
		{"git-receive-pack 'my_app.git'", "", ""},
		{"git-receive-pack '$(id).git'", "", ""},
		{"git-receive-pack 'myapp.git\n'", "", ""},
		{"git-upload-archive 'myapp.git'", "", ""},
		{"git receive-pack 'myapp.git'", "", ""},
		{"ls", "", ""},
		{"", "", ""},
		{"scp -t myapp.git", "", ""},
	} {
		service, app, err := parseCommand(tc.cmd)
		if service != tc.service || app != tc.app || (err == nil) != (tc.service != "") {
			t.Errorf("parseCommand(%q) = %q, %q, %v; want %q, %q", tc.cmd, service, app, err, tc.service, tc.app)
		}
	}
}

func TestParseHTTPPath(t *testing.T) {
	for _, tc := range []struct {
		path, app, op string
	}{
		{"/git/myapp.git/info/refs", "myapp", "info/refs"},
		{"/git/myapp.git/git-receive-pack", "myapp", "git-receive-pack"},
		{"/git/myapp.git/git-upload-pack", "myapp", "git-upload-pack"},
		{"/git/myapp/info/refs", "myapp", "info/refs"},
		{"/myapp.git/info/refs", "myapp", "info/refs"},
		{"/git/git.git/info/refs", "git", "info/refs"},
		{"/git.git/info/refs", "git", "info/refs"},
		{"/git/a/b.git/info/refs", "", ""},
		{"/git/.git/info/refs", "", ""},
		{"/git/myapp.git/HEAD", "", ""},
		{"/git/myapp.git/objects/info/packs", "", ""},
		{"/git/myapp.git/info/refs/x", "", ""},
		{"git/myapp.git/info/refs", "", ""},
	} {
		app, op, ok := parseHTTPPath(tc.path)
		if app != tc.app || op != tc.op || ok != (tc.app != "") {
			t.Errorf("parseHTTPPath(%q) = %q, %q, %v; want %q, %q", tc.path, app, op, ok, tc.app, tc.op)
		}
	}
}

func TestHookScript(t *testing.T) {
	got := hookScript([]string{"/opt/pier's/pier", "git-hook"})
	want := "#!/bin/sh\n# Written by pier's git receiver on every push: the build runs here.\nexec '/opt/pier'\\''s/pier' 'git-hook'\n"
	if got != want {
		t.Errorf("hookScript = %q, want %q", got, want)
	}
}
