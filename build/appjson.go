package build

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"

	"github.com/pierpaas/pier/internal/appjson"
	"github.com/pierpaas/pier/internal/procfile"
)

// readAppJSON reads and checks the source's app.json; nil when there is
// none. Its errors name the line in app.json, which is all the user
// needs to fix it.
func readAppJSON(appDir string) (*appjson.Manifest, error) {
	f, err := os.Open(filepath.Join(appDir, appjson.FileName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("build: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, appjson.MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("build: %w", err)
	}
	return appjson.Parse(data)
}

// checkAppJSON checks the manifest against the process types the build
// found (a formation or health check of a type the app has not, a cron
// entry whose name the Procfile uses), as the controller will when it
// makes the release, and says what the manifest declares.
func checkAppJSON(m *appjson.Manifest, cmds map[string]string, out io.Writer) error {
	all := maps.Clone(cmds)
	if err := m.Commands(all); err != nil {
		return err
	}
	// The app's name only goes into service names, which are not checked.
	if err := m.Configure(procfile.ProcessTypes("app", procfile.Procfile(all))); err != nil {
		return err
	}
	fmt.Fprintf(out, "-----> app.json declares %s\n", m.Summary())
	for _, w := range m.Warnings() {
		fmt.Fprintf(out, "       Warning: %s\n", w)
	}
	return nil
}
