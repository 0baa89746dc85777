package procfile

import (
	"errors"
	"maps"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     Procfile
	}{
		{"empty", "", Procfile{}},
		{"only comments", "# nothing\n\n   # indented comment\n", Procfile{}},
		{"heroku example", "web: bundle exec puma -p $PORT\nworker: bundle exec sidekiq\nrelease: rake db:migrate\n",
			Procfile{"web": "bundle exec puma -p $PORT", "worker": "bundle exec sidekiq", "release": "rake db:migrate"}},
		{"no trailing newline", "web: ./server", Procfile{"web": "./server"}},
		{"crlf", "web: ./server --port $PORT\r\nclock: ./clock\r\n", Procfile{"web": "./server --port $PORT", "clock": "./clock"}},
		{"bom", "\ufeffweb: ./server\n", Procfile{"web": "./server"}},
		{"no space after colon", "web:./server", Procfile{"web": "./server"}},
		{"spaces around name", "  web  :   ./server   \n", Procfile{"web": "./server"}},
		{"colon in command", "web: sh -c 'echo a: b' # c:d\n", Procfile{"web": "sh -c 'echo a: b' # c:d"}},
		{"dashes and digits", "worker-2: ./w\nv8-gc: ./g\n", Procfile{"worker-2": "./w", "v8-gc": "./g"}},
		{"tabs", "web:\t./server\n", Procfile{"web": "./server"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(strings.NewReader(tc.in))
			if err != nil || !maps.Equal(got, tc.want) {
				t.Fatalf("Parse(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		line     int
		want     string
	}{
		{"no colon", "web: ok\nthis is not a procfile\n", 2, "not \"name: command\""},
		{"upper case", "Web: ./server\n", 1, `"Web" is invalid`},
		{"underscore", "\n# x\nmy_worker: ./w\n", 3, `"my_worker" is invalid`},
		{"leading dash", "-web: ./server\n", 1, "invalid"},
		{"double dash", "a--b: ./server\n", 1, "invalid"},
		{"dot", "web.1: ./server\n", 1, "invalid"},
		{"too long", strings.Repeat("a", 64) + ": x\n", 1, "at most 63"},
		{"no name", ": ./server\n", 1, "no process type name"},
		{"empty command", "web: ./server\nworker:\n", 2, "worker has no command"},
		{"blank command", "worker:   \r\n", 1, "worker has no command"},
		{"duplicate", "web: a\nworker: b\nweb: c\n", 3, "already defined on line 1"},
		{"nul", "web: a\x00b\n", 1, "NUL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(strings.NewReader(tc.in))
			var le *LineError
			switch {
			case err == nil:
				t.Fatalf("Parse(%q) = %v; want an error", tc.in, got)
			case !errors.Is(err, ErrSyntax):
				t.Fatalf("error %v is not ErrSyntax", err)
			case !errors.As(err, &le) || le.Line != tc.line:
				t.Fatalf("error %v; want it on line %d", err, tc.line)
			case !strings.Contains(err.Error(), tc.want):
				t.Fatalf("error %q; want it to contain %q", err, tc.want)
			case got != nil:
				t.Fatalf("Parse returned %v with its error", got)
			}
		})
	}
}

func TestParseSizeLimit(t *testing.T) {
	line := "web: " + strings.Repeat("x", 1000) + "\n"
	ok := strings.Repeat("# "+strings.Repeat("c", 1021)+"\n", MaxSize/1024-1) + line
	if len(ok) > MaxSize {
		t.Fatalf("test input %d bytes", len(ok))
	}
	if _, err := Parse(strings.NewReader(ok)); err != nil {
		t.Fatalf("Parse(%d bytes) = %v", len(ok), err)
	}
	big := strings.Repeat("#", MaxSize+1)
	if _, err := Parse(strings.NewReader(big)); !errors.Is(err, ErrSyntax) || !strings.Contains(err.Error(), "64 KiB") {
		t.Fatalf("Parse(64 KiB + 1) = %v; want a size error", err)
	}
}
