package cliconfig

import (
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"strings"
)

// The sentinels below have no package prefix, unlike the rest of pier's:
// the CLI prints them as they are, and they are written as advice to the
// person at the terminal.
var (
	// ErrNoCluster means neither the config nor the environment names a
	// cluster.
	ErrNoCluster = errors.New("no cluster configured: run `pier up` or `pier cluster add NAME URL KEY`")
	// ErrUnknownCluster means --cluster (or the default) names a cluster
	// the config does not hold.
	ErrUnknownCluster = errors.New("unknown cluster")
)

// Environment variables that override the config file.
const (
	EnvURL = "PIER_URL"
	EnvKey = "PIER_KEY"
	EnvCA  = "PIER_CA" // path to a PEM file
	EnvApp = "PIER_APP"
)

// Resolve decides which cluster a command talks to. name (from --cluster)
// picks a configured cluster, else the default does; then PIER_URL,
// PIER_KEY and PIER_CA replace the fields they name. The environment
// patches rather than replaces, so PIER_KEY alone swaps in a CI key for the
// default cluster, and PIER_URL alone reaches the same cluster (same CA,
// same key) through another address such as a tunnel. PIER_URL and
// PIER_KEY together need no config file at all; such a cluster has no name.
// cfg may be nil. getenv is os.Getenv outside tests.
func Resolve(cfg *Config, name string, getenv func(string) string) (Cluster, error) {
	if cfg == nil {
		cfg = &Config{}
	}
	var cl Cluster
	switch {
	case name != "":
		c, ok := cfg.Get(name)
		if !ok {
			return Cluster{}, unknownCluster(cfg, name)
		}
		cl = c
	case cfg.Default != "":
		c, ok := cfg.Get(cfg.Default)
		// A dangling default (only a hand edit makes one) does not matter
		// when the environment describes a whole cluster.
		if !ok && (getenv(EnvURL) == "" || getenv(EnvKey) == "") {
			return Cluster{}, fmt.Errorf("%w: the default cluster %q is not in the config; choose one with `pier cluster default NAME`",
				ErrUnknownCluster, cfg.Default)
		}
		cl = c
	}
	fromConfig := cl.Name != ""

	url, key, caPath := getenv(EnvURL), getenv(EnvKey), getenv(EnvCA)
	if url != "" {
		cl.URL = strings.TrimRight(url, "/")
	}
	if key != "" {
		cl.Key = key
	}
	if caPath != "" {
		b, err := os.ReadFile(caPath)
		if err != nil {
			return Cluster{}, fmt.Errorf("%s: %w", EnvCA, err)
		}
		cl.CAPEM = string(b)
	}

	switch {
	case !fromConfig && url == "" && key == "":
		if len(cfg.Clusters) > 0 {
			return Cluster{}, fmt.Errorf("no default cluster: choose one with --cluster or `pier cluster default NAME` (clusters: %s)",
				strings.Join(cfg.Names(), ", "))
		}
		return Cluster{}, ErrNoCluster
	case !fromConfig && url == "":
		return Cluster{}, fmt.Errorf("%s is set but %s is not, and no cluster is configured", EnvKey, EnvURL)
	case !fromConfig && key == "":
		return Cluster{}, fmt.Errorf("%s is set but %s is not, and no cluster is configured", EnvURL, EnvKey)
	}
	if err := validateURL(cl.URL); err != nil {
		return Cluster{}, source(fromConfig && url == "", cl.Name, err)
	}
	if strings.TrimSpace(cl.Key) == "" {
		return Cluster{}, source(fromConfig && key == "", cl.Name, errors.New("no API key"))
	}
	if cl.CAPEM != "" {
		if _, err := certPool(cl.CAPEM); err != nil {
			return Cluster{}, source(fromConfig && caPath == "", cl.Name, err)
		}
	}
	return cl, nil
}

// source says where a bad value came from, so the user knows whether to
// fix the config or the environment.
func source(fromConfig bool, name string, err error) error {
	if fromConfig {
		return fmt.Errorf("cluster %s in the config: %w", name, err)
	}
	return fmt.Errorf("environment (%s, %s, %s): %w", EnvURL, EnvKey, EnvCA, err)
}

func unknownCluster(cfg *Config, name string) error {
	if len(cfg.Clusters) == 0 {
		return fmt.Errorf("%w %q: no clusters are configured; add one with `pier cluster add NAME URL KEY`", ErrUnknownCluster, name)
	}
	return fmt.Errorf("%w %q (clusters: %s)", ErrUnknownCluster, name, strings.Join(cfg.Names(), ", "))
}

// TLSConfig is the client TLS configuration for the cluster: with CAPEM,
// that CA is the only root trusted, so a certificate from any public CA for
// the same name is refused; without it, the system roots (a cluster behind
// a proxy with a public certificate).
func (cl Cluster) TLSConfig() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if cl.CAPEM != "" {
		pool, err := certPool(cl.CAPEM)
		if err != nil {
			return nil, fmt.Errorf("cluster %s: %w", cl.Name, err)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}
