package api

import "testing"

func TestAppUID(t *testing.T) {
	// Pinned: a change of mapping re-owns every volume on its job's next
	// start, so it must be deliberate.
	for app, want := range map[string]int{"web": 741294777, "victim": 333634035, "mallory": 471290745} {
		if got := AppUID(app); got != want {
			t.Errorf("AppUID(%q) = %d, want %d", app, got, want)
		}
	}
	seen := map[int]string{}
	for _, app := range []string{"a", "b", "web", "web-2", "victim", "mallory", "pg-1", "redis-x", "my-app-with-a-long-name"} {
		uid := AppUID(app)
		if uid < AppUIDBase || uid >= AppUIDBase+AppUIDCount {
			t.Errorf("AppUID(%q) = %d, outside [%d, %d)", app, uid, AppUIDBase, AppUIDBase+AppUIDCount)
		}
		if uid == 1000 || uid == 65534 || uid >= 1<<31-1 {
			t.Errorf("AppUID(%q) = %d, a reserved id", app, uid)
		}
		if other, ok := seen[uid]; ok {
			t.Errorf("AppUID(%q) = AppUID(%q) = %d", app, other, uid)
		}
		seen[uid] = app
		if AppUID(app) != uid {
			t.Errorf("AppUID(%q) is not stable", app)
		}
	}
}
