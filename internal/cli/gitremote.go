package cli

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/internal/cliconfig"
)

// git push over HTTPS needs the cluster's CA and an API key. Where git
// finds pier's remote helper (git-remote-pier, a link to pier), the remote
// is pier://APP and the helper brings both, whatever the user's
// environment says (gitremotehelper.go). Elsewhere the remote is the
// server's https:// URL: rather than write the key into .git/config, the
// remote's URL gets pier as its credential helper, which answers with the
// key of the cluster at that URL; the CA is written beside the CLI config
// and named in the checkout's http.<url>.sslCAInfo (which a
// GIT_SSL_CAINFO in the environment overrides, hence the helper).

func newGitRemoteCmd() *cobra.Command {
	var ac appCommand
	var useSSH, printOnly bool
	cmd := &cobra.Command{
		Use:   "git-remote",
		Short: "Add (or update) the git remote \"pier\" of this checkout, for git push pier main",
		Long: `Adds the remote "pier" to the git checkout in the current directory: over
HTTPS by default, or over SSH with --ssh (register a key with pier keys add
first; the cluster's host key is added to ~/.ssh/known_hosts). --print only
prints the URL.

Over HTTPS the remote is pier://APP (pier://CLUSTER/APP with --cluster)
when git can run git-remote-pier, the link to pier that make build and
scripts/setup install beside it: git then pushes through pier, which
connects to a live server of the cluster with the cluster's CA and your
API key, whatever GIT_SSL_CAINFO or HTTPS_PROXY say. Without the link the
remote is the server's https:// URL, authenticated through pier's git
credential helper.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			app, c, err := ac.resolve()
			if err != nil {
				return err
			}
			defer c.Close()
			cl, err := currentCluster()
			if err != nil {
				return err
			}
			// Asked first so that, when the cluster's URL is down, the
			// client moves to a server that is up, and the remote points
			// there.
			gi, err := c.GitInfo(cmd.Context())
			if err != nil {
				return err
			}
			cl.URL = c.ServerURL()
			var info *api.GitInfo
			if useSSH {
				if gi.SSHAddr == "" {
					return errors.New("this cluster's git receiver does not serve SSH; use HTTPS (without --ssh)")
				}
				info = &gi
			}
			remote := checkoutRemoteURL(cl, app, info)
			if printOnly {
				fmt.Println(remote)
				return nil
			}
			if err := configureGitRemote(".", app, cl, info); err != nil {
				return err
			}
			fmt.Printf("Git remote %s: %s\n", cliconfig.GitRemote, remote)
			return nil
		},
	}
	ac.register(cmd)
	cmd.Flags().BoolVar(&useSSH, "ssh", false, "push over SSH instead of HTTPS")
	cmd.Flags().BoolVar(&printOnly, "print", false, "print the remote's URL without changing the checkout")
	return cmd
}

// gitRemoteURL is where app's repository is, over SSH when info is set.
func gitRemoteURL(cl cliconfig.Cluster, app string, info *api.GitInfo) string {
	if info != nil {
		host, port, err := net.SplitHostPort(info.SSHAddr)
		if err == nil && (host == "" || net.ParseIP(host).IsUnspecified()) {
			// A receiver listening on every address is reached where the
			// API is.
			if u, err := url.Parse(cl.URL); err == nil {
				info.SSHAddr = net.JoinHostPort(u.Hostname(), port)
			}
		}
		return "ssh://git@" + info.SSHAddr + "/" + app + ".git"
	}
	return strings.TrimSuffix(cl.URL, "/") + "/git/" + app + ".git"
}

// checkoutRemoteURL is the URL configureGitRemote gives the remote: SSH
// with info, else pier:// where git finds pier's remote helper, else the
// server's HTTPS URL.
func checkoutRemoteURL(cl cliconfig.Cluster, app string, info *api.GitInfo) string {
	if info == nil && gitRemoteHelperInstalled() {
		// The cluster by name only when the user chose one: pier://APP
		// goes where every other command in the checkout goes.
		return cliconfig.PierURL(clusterFlag, app)
	}
	return gitRemoteURL(cl, app, info)
}

// inGitCheckout reports whether dir is inside a git work tree.
func inGitCheckout(dir string) bool {
	out, err := exec.Command("git", "-C", dir, "rev-parse", "--is-inside-work-tree").Output()
	return err == nil && strings.TrimSpace(string(out)) == "true"
}

// configureGitRemote points the checkout's remote "pier" at app.
func configureGitRemote(dir, app string, cl cliconfig.Cluster, info *api.GitInfo) error {
	if !inGitCheckout(dir) {
		return errors.New("not in a git checkout: run git init first")
	}
	remote := checkoutRemoteURL(cl, app, info)
	git := func(args ...string) error {
		var stderr bytes.Buffer
		c := exec.Command("git", append([]string{"-C", dir}, args...)...)
		c.Stderr = &stderr
		if err := c.Run(); err != nil {
			return fmt.Errorf("git %s: %v: %s", args[0], err, strings.TrimSpace(stderr.String()))
		}
		return nil
	}
	if err := git("remote", "get-url", cliconfig.GitRemote); err == nil {
		if err := git("remote", "set-url", cliconfig.GitRemote, remote); err != nil {
			return err
		}
	} else if err := git("remote", "add", cliconfig.GitRemote, remote); err != nil {
		return err
	}
	if info != nil {
		return addKnownHost(info)
	}
	if _, _, ok := cliconfig.ParsePierURL(remote); ok {
		return nil // the helper brings the CA and the key
	}
	base := strings.TrimSuffix(cl.URL, "/") + "/"
	if cl.CAPEM != "" {
		caFile, err := writeClusterCA(cl)
		if err != nil {
			return err
		}
		if err := git("config", "http."+base+".sslCAInfo", caFile); err != nil {
			return err
		}
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	// git runs a helper starting with "!" through the shell: the path is
	// our own executable's, single-quoted.
	helper := "!'" + strings.ReplaceAll(exe, "'", `'\''`) + "' git-credential"
	if err := git("config", "--replace-all", "credential."+base+".helper", ""); err != nil {
		return err
	}
	return git("config", "--add", "credential."+base+".helper", helper)
}

// pierModule is the module path of pier's own source.
const pierModule = "github.com/pierpaas/pier"

// isPierSource reports whether dir is in a checkout of pier itself (its
// top level holds pier's go.mod): pier create run there, as its
// developers do in tests and by hand, must not give pier's repository a
// remote and credentials for some cluster.
func isPierSource(dir string) bool {
	out, err := exec.Command("git", "-C", dir, "rev-parse", "--show-toplevel").Output()
	if err != nil {
		return false
	}
	b, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(out)), "go.mod"))
	if err != nil {
		return false
	}
	for line := range strings.Lines(string(b)) {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "module" {
			return strings.Trim(f[1], `"`) == pierModule
		}
	}
	return false
}

// writeClusterCA writes the cluster's CA beside the CLI config.
func writeClusterCA(cl cliconfig.Cluster) (string, error) {
	path, err := cliconfig.DefaultPath()
	if err != nil {
		return "", err
	}
	u, err := url.Parse(cl.URL)
	if err != nil {
		return "", err
	}
	name := strings.NewReplacer(":", "_", "/", "_").Replace(u.Host)
	file := filepath.Join(filepath.Dir(path), "ca", name+".pem")
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return "", err
	}
	return file, os.WriteFile(file, []byte(cl.CAPEM), 0o600)
}

// addKnownHost adds the receivers' host key to ~/.ssh/known_hosts.
func addKnownHost(info *api.GitInfo) error {
	home, err := os.UserHomeDir()
	if err != nil {
		return err
	}
	host, port, err := net.SplitHostPort(info.SSHAddr)
	if err != nil {
		return err
	}
	line := fmt.Sprintf("[%s]:%s %s\n", host, port, strings.TrimSpace(info.HostKey))
	file := filepath.Join(home, ".ssh", "known_hosts")
	if old, err := os.ReadFile(file); err == nil && bytes.Contains(old, []byte(strings.TrimSpace(line))) {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(file, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.WriteString(line)
	return err
}

// newGitCredentialCmd is git's credential helper: for "get" it answers
// with the API key of the configured cluster whose URL git asks about.
func newGitCredentialCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "git-credential get|store|erase",
		Short:  "git credential helper: answers with the API key of the cluster git pushes to",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			attrs := map[string]string{}
			sc := bufio.NewScanner(os.Stdin)
			for sc.Scan() {
				k, v, ok := strings.Cut(sc.Text(), "=")
				if !ok {
					break
				}
				attrs[k] = v
			}
			if args[0] != "get" {
				return nil // nothing is stored
			}
			path, err := cliconfig.DefaultPath()
			if err != nil {
				return err
			}
			cfg, err := cliconfig.Load(path)
			if err != nil {
				return err
			}
			if key, ok := credentialFor(cfg, attrs["protocol"], attrs["host"]); ok {
				fmt.Printf("username=pier\npassword=%s\n", key)
			}
			return nil // else git asks the next helper, or the user
		},
	}
}

// credentialFor is the API key of the configured cluster that has a
// server at protocol://host: its URL, or one of its other servers.
func credentialFor(cfg *cliconfig.Config, protocol, host string) (string, bool) {
	for _, cl := range cfg.Clusters {
		for _, raw := range append([]string{cl.URL}, cl.Servers...) {
			u, err := url.Parse(raw)
			if err == nil && u.Scheme == protocol && u.Host == host {
				return cl.Key, true
			}
		}
	}
	return "", false
}
