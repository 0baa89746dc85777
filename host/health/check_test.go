package health

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	good := Check{Kind: KindHTTP, Addr: "127.0.0.1:8080", Path: "/health", Interval: time.Second, Timeout: time.Second, Threshold: 3}
	tests := []struct {
		name   string
		modify func(*Check)
		want   string // part of the error; "" means valid
	}{
		{"good http", func(c *Check) {}, ""},
		{"good tcp", func(c *Check) { c.Kind, c.Path = KindTCP, "" }, ""},
		{"ipv6", func(c *Check) { c.Addr = "[::1]:8080" }, ""},
		{"query", func(c *Check) { c.Path = "/health?deep=1" }, ""},
		{"expect status", func(c *Check) { c.ExpectStatus = 204 }, ""},
		{"zero grace", func(c *Check) { c.StartGrace = 0 }, ""},
		{"bad kind", func(c *Check) { c.Kind = "udp" }, "kind"},
		{"empty kind", func(c *Check) { c.Kind = "" }, "kind"},
		{"missing addr", func(c *Check) { c.Addr = "" }, "missing addr"},
		{"addr without port", func(c *Check) { c.Addr = "127.0.0.1" }, "addr"},
		{"addr without host", func(c *Check) { c.Addr = ":8080" }, "addr"},
		{"port zero", func(c *Check) { c.Addr = "127.0.0.1:0" }, "addr"},
		{"port too big", func(c *Check) { c.Addr = "127.0.0.1:70000" }, "addr"},
		{"named port", func(c *Check) { c.Addr = "127.0.0.1:http" }, "addr"},
		{"zero interval", func(c *Check) { c.Interval = 0 }, "interval"},
		{"negative interval", func(c *Check) { c.Interval = -time.Second }, "interval"},
		{"zero timeout", func(c *Check) { c.Timeout = 0 }, "timeout"},
		{"negative grace", func(c *Check) { c.StartGrace = -1 }, "grace"},
		{"zero threshold", func(c *Check) { c.Threshold = 0 }, "threshold"},
		{"empty path", func(c *Check) { c.Path = "" }, "path"},
		{"relative path", func(c *Check) { c.Path = "health" }, "path"},
		{"scheme-relative path", func(c *Check) { c.Path = "//evil.example/x" }, "path"},
		{"full url as path", func(c *Check) { c.Path = "http://evil.example/" }, "path"},
		{"control character", func(c *Check) { c.Path = "/a\nb" }, "path"},
		{"bad status", func(c *Check) { c.ExpectStatus = 42 }, "status"},
		{"path on tcp", func(c *Check) { c.Kind = KindTCP }, "http checks"},
		{"status on tcp", func(c *Check) { c.Kind, c.Path, c.ExpectStatus = KindTCP, "", 200 }, "http checks"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good
			tt.modify(&c)
			err := Validate(c)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate(%+v) = %v", c, err)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate(%+v) = %v, want an ErrInvalid about %q", c, err, tt.want)
			}
		})
	}
}

func TestWithDefaults(t *testing.T) {
	tests := []struct {
		name string
		in   Check
		want Check
	}{
		{"http", Check{Kind: KindHTTP, Addr: "h:1"},
			Check{Kind: KindHTTP, Addr: "h:1", Path: "/", Interval: DefaultInterval, Timeout: DefaultTimeout, Threshold: DefaultThreshold}},
		{"tcp keeps an empty path", Check{Kind: KindTCP, Addr: "h:1"},
			Check{Kind: KindTCP, Addr: "h:1", Interval: DefaultInterval, Timeout: DefaultTimeout, Threshold: DefaultThreshold}},
		{"no kind, no path", Check{Addr: "h:1"},
			Check{Kind: KindTCP, Addr: "h:1", Interval: DefaultInterval, Timeout: DefaultTimeout, Threshold: DefaultThreshold}},
		{"no kind, a path", Check{Addr: "h:1", Path: "/up"},
			Check{Kind: KindHTTP, Addr: "h:1", Path: "/up", Interval: DefaultInterval, Timeout: DefaultTimeout, Threshold: DefaultThreshold}},
		{"explicit values stay", Check{Kind: KindHTTP, Addr: "h:1", Path: "/x", Interval: 1, Timeout: 2, Threshold: 7},
			Check{Kind: KindHTTP, Addr: "h:1", Path: "/x", Interval: 1, Timeout: 2, Threshold: 7}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.in.WithDefaults(); got != tt.want {
				t.Fatalf("WithDefaults = %+v, want %+v", got, tt.want)
			}
			if err := Validate(tt.in.WithDefaults()); err != nil {
				t.Fatal(err)
			}
		})
	}
}
