package cliconfig

import (
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/internal/pki"
)

// Cluster is one cluster the CLI can talk to.
type Cluster struct {
	Name string `json:"name"`
	// URL is the controller's base URL, "https://host:port", with no
	// trailing slash so paths can be appended.
	URL string `json:"url"`
	Key string `json:"key"`
	// CAPEM is the cluster CA's certificate. When set it is the only root
	// trusted for this cluster: a pier cluster's certificates come from its
	// own CA, which no system store holds.
	CAPEM string `json:"ca_pem,omitempty"`
	// Servers are the URLs of the cluster's other servers, which the
	// CLI turns to when URL cannot be reached; ServersAt is when the
	// list was last read from the cluster (GET /v1/servers).
	Servers   []string  `json:"servers,omitempty"`
	ServersAt time.Time `json:"servers_at,omitzero"`
}

// Config is the CLI's configuration file. Clusters keep the order they
// were first added in, so listings are stable.
type Config struct {
	Default  string    `json:"default,omitempty"`
	Clusters []Cluster `json:"clusters"`
}

// DefaultPath is $XDG_CONFIG_HOME/pier/config.json, or
// ~/.config/pier/config.json. It does not use os.UserConfigDir, which
// answers ~/Library/Application Support on macOS: pier's users expect one
// place on every Unix, as git and gh do. A relative XDG_CONFIG_HOME is
// ignored, as the XDG spec asks.
func DefaultPath() (string, error) {
	if d := os.Getenv("XDG_CONFIG_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "pier", "config.json"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("cliconfig: no home directory for the config file (set XDG_CONFIG_HOME): %w", err)
	}
	return filepath.Join(home, ".config", "pier", "config.json"), nil
}

// Load reads the config at path. A missing file is an empty config, not an
// error: a fresh machine, or one configured only through the environment.
// Entries are not validated here so that one bad entry, written by hand,
// does not lock the user out of `pier cluster remove`; Resolve checks the
// cluster it picks.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &Config{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cliconfig: %w", err)
	}
	var c Config
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("cliconfig: %s: %w", path, err)
	}
	return &c, nil
}

// Save writes the config to path with mode 0600 (it holds API keys), in a
// directory created 0700 if missing, through a temp file and a rename so a
// crash or a full disk never leaves half a file.
func (c *Config) Save(path string) error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("cliconfig: %w", err)
	}
	if err := pki.WriteFile(path, append(b, '\n')); err != nil {
		return fmt.Errorf("cliconfig: save %s: %w", path, err)
	}
	return nil
}

// Get returns the cluster called name.
func (c *Config) Get(name string) (Cluster, bool) {
	if i := c.index(name); i >= 0 {
		return c.Clusters[i], true
	}
	return Cluster{}, false
}

func (c *Config) index(name string) int {
	return slices.IndexFunc(c.Clusters, func(cl Cluster) bool { return cl.Name == name })
}

// Add validates cl and stores it, replacing a cluster of the same name in
// place. The cluster becomes the default when makeDefault is set, and also
// when there is no default yet: the first cluster a user adds is the one
// they mean, and a config with clusters but no default only produces
// errors. The URL is stored without a trailing slash.
func (c *Config) Add(cl Cluster, makeDefault bool) error {
	cl.URL = strings.TrimRight(cl.URL, "/")
	if err := cl.Validate(); err != nil {
		return err
	}
	if i := c.index(cl.Name); i >= 0 {
		c.Clusters[i] = cl
	} else {
		c.Clusters = append(c.Clusters, cl)
	}
	if makeDefault || c.Default == "" {
		c.Default = cl.Name
	}
	return nil
}

// SetServers records the other servers of the cluster called name, read
// at, and reports whether the cluster exists.
func (c *Config) SetServers(name string, urls []string, at time.Time) bool {
	i := c.index(name)
	if i < 0 {
		return false
	}
	c.Clusters[i].Servers, c.Clusters[i].ServersAt = urls, at
	return true
}

// Remove deletes the cluster called name, reporting whether it existed.
// Removing the default leaves no default rather than picking another:
// silently pointing the next command at a different cluster is worse than
// an error that says to choose.
func (c *Config) Remove(name string) bool {
	i := c.index(name)
	if i < 0 {
		return false
	}
	c.Clusters = slices.Delete(c.Clusters, i, i+1)
	if c.Default == name {
		c.Default = ""
	}
	return true
}

// SetDefault makes the cluster called name the default.
func (c *Config) SetDefault(name string) error {
	if c.index(name) < 0 {
		return unknownCluster(c, name)
	}
	c.Default = name
	return nil
}

// Names lists the clusters' names in config order.
func (c *Config) Names() []string {
	names := make([]string, len(c.Clusters))
	for i, cl := range c.Clusters {
		names[i] = cl.Name
	}
	return names
}

// Validate explains what is wrong with a cluster entry, or returns nil.
func (cl Cluster) Validate() error {
	if !api.ValidID(cl.Name) {
		return fmt.Errorf("cluster name %q is invalid: use lower-case letters, digits and single dashes between them (like prod-1)", cl.Name)
	}
	if err := validateURL(cl.URL); err != nil {
		return fmt.Errorf("cluster %s: %w", cl.Name, err)
	}
	if strings.TrimSpace(cl.Key) == "" {
		return fmt.Errorf("cluster %s: no API key", cl.Name)
	}
	if cl.CAPEM != "" {
		if _, err := certPool(cl.CAPEM); err != nil {
			return fmt.Errorf("cluster %s: %w", cl.Name, err)
		}
	}
	return nil
}

// validateURL accepts http as well as https: a cluster behind a local TLS
// terminating proxy, or a test server, is reached over plain HTTP.
// Credentials in the URL are refused because the key has its own field
// and a URL is printed in messages.
func validateURL(s string) error {
	if s == "" {
		return errors.New("no URL")
	}
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return fmt.Errorf("invalid URL %q: %w", s, err)
	case u.Scheme != "https" && u.Scheme != "http":
		return fmt.Errorf("URL %q: scheme must be https (or http)", s)
	case u.Host == "" || u.Hostname() == "":
		return fmt.Errorf("URL %q has no host", s)
	case u.User != nil:
		return fmt.Errorf("URL %q: put the API key in the key, not in the URL", u.Redacted())
	case u.RawQuery != "" || u.Fragment != "":
		return fmt.Errorf("URL %q: a base URL takes no query or fragment", s)
	}
	return nil
}

func certPool(caPEM string) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(caPEM)) {
		return nil, errors.New("CA holds no PEM certificate")
	}
	return pool, nil
}
