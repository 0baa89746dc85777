package runtime

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestRuncJobUID runs a job as an app's own uid: the process, the files
// it writes to /tmp and to a mounted volume, its /app overlay, and the
// generated /etc/passwd all follow, and a job of another uid cannot
// write to that volume.
func TestRuncJobUID(t *testing.T) {
	r := newTestRunc(t)
	const uid = 123456
	vol := t.TempDir()
	if err := os.Chown(vol, uid, uid); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(vol, 0o700); err != nil {
		t.Fatal(err)
	}
	app := t.TempDir()
	if err := os.WriteFile(filepath.Join(app, "Procfile"), []byte("web: x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(app, uid, uid); err != nil {
		t.Fatal(err)
	}
	script := `
id -u; id -g; id -un; id -gn
echo "home=$HOME"
grep '^app:' /etc/passwd
grep '^app:' /etc/group
echo hi > /tmp/f && stat -c tmp=%u:%g /tmp/f
echo hi > /vol/f && stat -c vol=%u:%g /vol/f
mkdir /app/tmp && stat -c app=%u:%g /app/tmp
`
	res := sh(t, r, script, func(s *Spec) {
		s.UID = uid
		s.AppDir, s.Writable = app, true
		s.Mounts = []Mount{{Source: vol, Destination: "/vol"}}
	})
	want := "123456\n123456\napp\napp\nhome=/app\n" +
		"app:x:123456:123456:app:/app:/bin/sh\napp:x:123456:\n" +
		"tmp=123456:123456\nvol=123456:123456\napp=123456:123456\n"
	if res.stdout != want {
		t.Errorf("stdout:\n%s\nwant:\n%s\nstderr: %s", res.stdout, want, res.stderr)
	}
	fi, err := os.Stat(filepath.Join(vol, "f"))
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != uid || st.Gid != uid {
		t.Errorf("on the host the volume's file is %d:%d, want %d:%d", st.Uid, st.Gid, uid, uid)
	}
	if _, err := os.Stat(filepath.Join(app, "tmp")); err == nil {
		t.Error("the job wrote into AppDir")
	}

	t.Run("other uid", func(t *testing.T) {
		// Another app's job (and the default user) is kept out of it.
		for _, other := range []int{0, 654321} {
			res := sh(t, r, "id -u; echo x > /vol/g 2>/dev/null && echo wrote; cat /vol/f 2>/dev/null || echo denied", func(s *Spec) {
				s.UID = other
				s.Mounts = []Mount{{Source: vol, Destination: "/vol"}}
			})
			wantUID := "1000"
			if other != 0 {
				wantUID = "654321"
			}
			if res.stdout != wantUID+"\ndenied\n" {
				t.Errorf("uid %s: stdout %q, want %q (stderr %q)", wantUID, res.stdout, wantUID+"\ndenied\n", res.stderr)
			}
		}
		if _, err := os.Stat(filepath.Join(vol, "g")); err == nil {
			t.Error("another uid wrote into the volume")
		}
	})
}

func TestSpecUser(t *testing.T) {
	for _, c := range []struct {
		s        Spec
		uid, gid int
	}{
		{Spec{}, AppUID, AppGID},
		{Spec{Root: true}, 0, 0},
		{Spec{UID: 123456}, 123456, 123456},
		{Spec{UID: 123456, GID: 2000}, 123456, 2000},
		{Spec{GID: 2000}, AppUID, 2000},
	} {
		if uid, gid := c.s.user(); uid != c.uid || gid != c.gid {
			t.Errorf("%+v: user() = %d:%d, want %d:%d", c.s, uid, gid, c.uid, c.gid)
		}
	}
	ok := Spec{ID: "x", Args: []string{"true"}}
	for _, u := range []int{0, MinJobUID, 123456, MaxJobUID} {
		s := ok
		s.UID, s.GID = u, u
		if err := s.Validate(); err != nil {
			t.Errorf("uid %d: %v", u, err)
		}
	}
	for name, mod := range map[string]func(*Spec){
		"negative":   func(s *Spec) { s.UID = -1 },
		"system uid": func(s *Spec) { s.UID = 999 },
		"nobody":     func(s *Spec) { s.UID = NobodyUID },
		"too big":    func(s *Spec) { s.UID = MaxJobUID + 1 },
		"system gid": func(s *Spec) { s.UID, s.GID = 123456, 5 },
		"root+uid":   func(s *Spec) { s.Root, s.UID = true, 123456 },
	} {
		s := ok
		mod(&s)
		if err := s.Validate(); !errors.Is(err, ErrInvalidSpec) {
			t.Errorf("%s: Validate = %v, want ErrInvalidSpec", name, err)
		}
	}
	// The runc driver refuses the spec before it touches anything.
	r := newTestRunc(t)
	if _, err := r.Run(context.Background(), Spec{ID: "bad-uid", Args: []string{"true"}, UID: 42}, IO{}, nil); !errors.Is(err, ErrInvalidSpec) {
		t.Errorf("Run(uid 42) = %v, want ErrInvalidSpec", err)
	}
	passwd, group := Spec{UID: 200000}.etcUsers()
	if !strings.Contains(passwd, "\napp:x:200000:200000:app:/app:/bin/sh\n") || !strings.Contains(group, "\napp:x:200000:\n") {
		t.Errorf("passwd %q group %q", passwd, group)
	}
}
