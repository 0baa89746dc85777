package cli

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pierpaas/pier/client"
)

// newDashboardCmd is `pier dashboard`: a one-time URL that signs a browser
// in to the web dashboard with this CLI's key, opened when it can be.
func newDashboardCmd() *cobra.Command {
	var noOpen bool
	cmd := clientAction(&cobra.Command{
		Use:   "dashboard",
		Short: "Print (and open) a one-time URL that signs a browser in to the web dashboard",
		Args:  cobra.NoArgs,
	}, func(cmd *cobra.Command, c *client.Controller, _ []string) error {
		t, err := c.DashboardTicket(cmd.Context())
		if err != nil {
			return err
		}
		u := strings.TrimSuffix(c.ServerURL(), "/") + t.Path
		fmt.Fprintf(os.Stderr, "Sign in to the dashboard with this URL (once, within %s):\n",
			time.Until(t.ExpiresAt).Round(time.Second))
		fmt.Println(u)
		if !noOpen && canOpenBrowser() {
			// Best effort: the URL is printed either way.
			if err := exec.Command("xdg-open", u).Start(); err == nil {
				fmt.Fprintln(os.Stderr, "(opened in your browser)")
			}
		}
		return nil
	})
	cmd.Flags().BoolVar(&noOpen, "no-open", false, "only print the URL")
	return cmd
}

// canOpenBrowser: a desktop session with xdg-open; never over SSH alone,
// where a text browser would take over the terminal.
func canOpenBrowser() bool {
	if os.Getenv("DISPLAY") == "" && os.Getenv("WAYLAND_DISPLAY") == "" {
		return false
	}
	_, err := exec.LookPath("xdg-open")
	return err == nil
}
