package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/pierpaas/pier/client"
	"github.com/pierpaas/pier/internal/cliconfig"
)

// The flags every command that talks to the controller shares.
var (
	clusterFlag string // --cluster, on the root
)

// controllerClient connects to the cluster the flags, the environment and
// the config file name.
func controllerClient() (*client.Controller, error) {
	cl, err := currentCluster()
	if err != nil {
		return nil, err
	}
	tlsCfg, err := cl.TLSConfig()
	if err != nil {
		return nil, err
	}
	opts := []client.Option{client.WithFallbacks(cl.Servers...)}
	if p := clusterProxy(); p != "" {
		opts = append(opts, client.WithProxy(p))
	}
	c, err := client.NewController(cl.URL, cl.Key, tlsCfg, opts...)
	if err != nil {
		return nil, err
	}
	c.OnMove(func(from, to string, _ error) {
		fmt.Fprintf(os.Stderr, "pier: the server at %s cannot be reached; using %s\n", from, to)
	})
	if cl.Name != "" && time.Since(cl.ServersAt) > serversRefresh {
		refreshServers(c, cl)
	}
	return c, nil
}

// EnvProxy names the HTTP proxy to reach the cluster's servers through,
// for the API and for git pushes to pier:// remotes. HTTPS_PROXY and the
// like are not used for them (see client.WithProxy).
const EnvProxy = "PIER_PROXY"

func clusterProxy() string { return os.Getenv(EnvProxy) }

// serversRefresh is how old the config's list of a cluster's servers may
// grow before a command reads it again.
const serversRefresh = time.Hour

// refreshServers records the cluster's other servers in the config, for
// the client to turn to when the one it knows is down. It is best
// effort: a failure leaves the list as it was, for the next command.
func refreshServers(c *client.Controller, cl cliconfig.Cluster) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	servers, err := c.Servers(ctx)
	if err != nil {
		return
	}
	var urls []string
	for _, s := range servers {
		if s.URL != cl.URL {
			urls = append(urls, s.URL)
		}
	}
	editConfig(func(cfg *cliconfig.Config) error {
		cfg.SetServers(cl.Name, urls, time.Now())
		return nil
	})
}

// currentCluster is the cluster commands talk to: --cluster, then the
// environment, then the config's default.
func currentCluster() (cliconfig.Cluster, error) {
	path, err := cliconfig.DefaultPath()
	if err != nil {
		return cliconfig.Cluster{}, err
	}
	cfg, err := cliconfig.Load(path)
	if err != nil {
		return cliconfig.Cluster{}, err
	}
	return cliconfig.Resolve(cfg, clusterFlag, os.Getenv)
}

// appCommand is a command about one app: -a/--app, PIER_APP, or the git
// remote named pier.
type appCommand struct {
	app string
}

func (a *appCommand) register(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&a.app, "app", "a", "", "the app (default: $PIER_APP, or the git remote named pier)")
}

// clientAction makes cmd act on the cluster through a controller client,
// which run gets open and which is closed after it.
func clientAction(cmd *cobra.Command, run func(cmd *cobra.Command, c *client.Controller, args []string) error) *cobra.Command {
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		c, err := controllerClient()
		if err != nil {
			return err
		}
		defer c.Close()
		return run(cmd, c, args)
	}
	return cmd
}

// appAction makes cmd act on one app (-a, $PIER_APP or the git remote
// named pier) through a controller client, which run gets open and
// which is closed after it.
func appAction(cmd *cobra.Command, run func(cmd *cobra.Command, c *client.Controller, app string, args []string) error) *cobra.Command {
	var ac appCommand
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		app, c, err := ac.resolve()
		if err != nil {
			return err
		}
		defer c.Close()
		return run(cmd, c, app, args)
	}
	ac.register(cmd)
	return cmd
}

// resolve returns the app and a client.
func (a *appCommand) resolve() (string, *client.Controller, error) {
	wd, _ := os.Getwd()
	name, err := cliconfig.ResolveApp(a.app, os.Getenv, wd)
	if err != nil {
		return "", nil, err
	}
	c, err := controllerClient()
	return name, c, err
}

// printJSON writes v indented, for --json.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table writes rows under a header, aligned.
func table(w io.Writer, header []string, rows [][]string) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	tw.Flush()
}

// sortedKeys returns a map's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// progress writes a progress line to stderr, where it does not mix with
// output a script reads.
func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
}
