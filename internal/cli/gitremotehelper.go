package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pierpaas/pier/internal/cliconfig"
)

// git runs git-remote-pier REMOTE URL for a remote whose URL is pier://…
// (gitremotes(7)); the pier binary answers to that name through a link
// installed beside it. The helper decides everything about the connection
// that git would otherwise take from the user's environment, and leaves
// the protocol to git's own smart-HTTP helper (git remote-https), which
// it runs:
//   - the server: the first live one of the cluster, as for any command
//     (the config keeps the cluster's servers), so a push reaches the
//     cluster while one of its servers is down;
//   - the CA: the cluster's own, whatever GIT_SSL_CAINFO or
//     http.sslCAInfo say (common on corporate machines and CI runners,
//     and they override what a checkout's config says);
//   - the proxy: none, or PIER_PROXY, never the HTTPS_PROXY meant for
//     the user's internet (see clusterProxy);
//   - the credentials: the cluster's API key as a bearer token, from the
//     CLI config or PIER_KEY, never written into the checkout.

// GitRemoteHelperName is the name the pier binary runs as git's remote
// helper for pier:// URLs.
const GitRemoteHelperName = "git-remote-pier"

func newGitRemoteHelperCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "git-remote-helper REMOTE pier://[CLUSTER/]APP",
		Short: "git's remote helper for pier:// URLs (what git-remote-pier runs)",
		Long: `Git runs git-remote-pier (a link to pier) for remotes whose URL is
pier://APP or pier://CLUSTER/APP. It connects to a live server of the
cluster with the cluster's CA and API key, whatever GIT_SSL_CAINFO, the
proxy variables or git's http.* settings say, and hands the protocol to
git's own HTTPS helper.`,
		Hidden: true,
		Args:   cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runGitRemoteHelper(cmd.Context(), args[0], args[1])
		},
	}
}

// runGitRemoteHelper runs git remote-https for the server and settings it
// picks, and says so when the push it carried was cut short.
func runGitRemoteHelper(ctx context.Context, remote, rawURL string) error {
	clusterName, app, ok := cliconfig.ParsePierURL(rawURL)
	if !ok {
		return fmt.Errorf("%s: %q is not pier://APP or pier://CLUSTER/APP", GitRemoteHelperName, rawURL)
	}
	if clusterName != "" {
		clusterFlag = clusterName
	}
	cl, err := currentCluster()
	if err != nil {
		return err
	}
	c, err := controllerClient()
	if err != nil {
		return err
	}
	defer c.Close()
	// A cheap authenticated request: it finds a live server, and a wrong
	// key fails here with pier's message rather than as git's "Authentication
	// failed".
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := c.App(ctx, app); err != nil {
		return fmt.Errorf("%s: %w", app, err)
	}
	cl.URL = c.ServerURL()
	env, err := gitHelperEnv(os.Environ(), cl)
	if err != nil {
		return err
	}
	git, err := exec.LookPath("git")
	if err != nil {
		return err
	}
	// git's stdin and stdout are the helper protocol: nothing of ours may
	// be written to stdout. git remote-https runs as a child rather than
	// in this process's place, so that a push cut short (the server lost
	// while it built) is told as such, not only as git's "the remote end
	// hung up": a build that fails is reported inside the protocol, and
	// the helper then exits 0.
	h := exec.Command(git, "remote-https", remote, gitRemoteURL(cl, app, nil))
	h.Stdin, h.Stdout, h.Stderr, h.Env = os.Stdin, os.Stdout, os.Stderr, env
	err = h.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		fmt.Fprintf(os.Stderr, "pier: the connection to %s ended before the push did (the server may have been lost mid-build); "+
			"see `pier builds -a %s` for what happened, and push again\n", cl.URL, app)
		return exitError{ee.ExitCode()}
	}
	return err
}

// gitHelperEnv is the environment of git remote-https for a push to
// cl.URL: the user's, without what would change how pier's server is
// reached, plus git settings (GIT_CONFIG_COUNT and friends, git ≥ 2.31)
// that come last and so win over every config file.
func gitHelperEnv(environ []string, cl cliconfig.Cluster) ([]string, error) {
	drop := []string{
		"GIT_SSL_CAINFO", "GIT_SSL_CAPATH", "GIT_SSL_NO_VERIFY", "GIT_SSL_CERT", "GIT_SSL_KEY",
		"GIT_SSL_CERT_PASSWORD_PROTECTED", "GIT_SSL_VERSION", "GIT_SSL_CIPHER_LIST",
		"GIT_CURL_VERBOSE", "GIT_TRACE_CURL",
	}
	var env []string
	count := 0
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		if k == "GIT_CONFIG_COUNT" {
			count, _ = strconv.Atoi(v)
			continue
		}
		if !contains(drop, k) {
			env = append(env, kv)
		}
	}
	cfg := [][2]string{
		// The key as a header: no credential helper is asked, nothing is
		// stored, and no prompt appears if the key is refused.
		{"http.extraHeader", "Authorization: Bearer " + cl.Key},
		{"http.proxy", clusterProxy()},
		{"http.sslVerify", "true"},
	}
	if cl.CAPEM != "" {
		ca, err := writeClusterCA(cl)
		if err != nil {
			return nil, err
		}
		env = append(env, "GIT_SSL_CAINFO="+ca)
	}
	for _, kv := range cfg {
		n := strconv.Itoa(count)
		env = append(env, "GIT_CONFIG_KEY_"+n+"="+kv[0], "GIT_CONFIG_VALUE_"+n+"="+kv[1])
		count++
	}
	return append(env, "GIT_CONFIG_COUNT="+strconv.Itoa(count), "GIT_TERMINAL_PROMPT=0"), nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// gitRemoteHelperInstalled reports whether git will find git-remote-pier,
// so that pier create and pier git-remote can use pier:// remotes.
func gitRemoteHelperInstalled() bool {
	if _, err := exec.LookPath(GitRemoteHelperName); err == nil {
		return true
	}
	out, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		return false
	}
	_, err = os.Stat(filepath.Join(strings.TrimSpace(string(out)), GitRemoteHelperName))
	return err == nil
}

// isGitRemoteHelper reports whether argv0 is the name git runs the pier
// binary by for pier:// remotes.
func isGitRemoteHelper(argv0 string) bool {
	return filepath.Base(argv0) == GitRemoteHelperName
}
