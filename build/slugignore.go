package build

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// slugPattern is one line of a .slugignore.
type slugPattern struct {
	glob     string // path.Match pattern
	anchored bool   // matched against the whole relative path, not the base name
	dirOnly  bool   // trailing '/': only directories
}

// parseSlugignore reads .slugignore lines the way Heroku does, which is
// .gitignore's syntax without negation: '#' comments and blank lines are
// skipped; a pattern with a '/' other than a trailing one is relative to
// the app's root (a leading '/' only says so), one without matches a name
// at any depth; a trailing '/' matches directories only; a leading "**/"
// means any depth.
func parseSlugignore(b []byte) ([]slugPattern, error) {
	var pats []slugPattern
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "!") {
			return nil, fmt.Errorf("build: .slugignore line %d: negation (!) is not supported", n)
		}
		var p slugPattern
		if strings.HasSuffix(line, "/") {
			p.dirOnly = true
			line = strings.TrimRight(line, "/")
		}
		for strings.HasPrefix(line, "**/") {
			line = line[3:]
		}
		if strings.Contains(line, "/") {
			p.anchored = true
			line = strings.TrimLeft(line, "/")
		}
		if line == "" {
			continue
		}
		if _, err := path.Match(line, ""); err != nil {
			return nil, fmt.Errorf("build: .slugignore line %d: %w", n, err)
		}
		p.glob = line
		pats = append(pats, p)
	}
	return pats, nil
}

func (p slugPattern) match(rel string, isDir bool) bool {
	if p.dirOnly && !isDir {
		return false
	}
	name := rel
	if !p.anchored {
		name = path.Base(rel)
	}
	ok, _ := path.Match(p.glob, name)
	return ok
}

// applySlugignore removes from appDir what its .slugignore matches and
// returns how many files and directories it removed (a directory counts
// once). Heroku removes them before compiling, so buildpacks do not see
// them either. Symbolic links are removed, never followed.
func applySlugignore(appDir string) (int, error) {
	b, err := os.ReadFile(filepath.Join(appDir, ".slugignore"))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	} else if err != nil {
		return 0, fmt.Errorf("build: %w", err)
	}
	pats, err := parseSlugignore(b)
	if err != nil || len(pats) == 0 {
		return 0, err
	}
	var doomed []string
	err = filepath.WalkDir(appDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == appDir {
			return nil
		}
		rel, err := filepath.Rel(appDir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		for _, pat := range pats {
			if pat.match(rel, d.IsDir()) {
				doomed = append(doomed, p)
				if d.IsDir() {
					return fs.SkipDir
				}
				return nil
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("build: .slugignore: %w", err)
	}
	for _, p := range doomed {
		if err := removeAll(p); err != nil {
			return 0, fmt.Errorf("build: .slugignore: %w", err)
		}
	}
	return len(doomed), nil
}
