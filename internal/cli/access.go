package cli

import (
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

// newAccessCmd is `pier access`: the rules that let one app's jobs reach
// another's, which every other pair of apps may not (see docs/network.md).
func newAccessCmd() *cobra.Command {
	var app string
	cmd := &cobra.Command{
		Use:   "access",
		Short: "List which apps' jobs may open connections to which others'",
		Long: `Every job has a network of its own. A job reaches the internet, the jobs
of its own app and the resources its app is attached to; it cannot reach
other apps' jobs, its host or other hosts. 'pier access allow APP --from
OTHER' lets OTHER's jobs open connections to APP's (at their addresses, or
<process>.APP.pier.internal); 'pier access deny' takes that back. Rules that
come from a resource attachment go with the attachment.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := controllerClient()
			if err != nil {
				return err
			}
			defer c.Close()
			rules, err := c.AccessRules(cmd.Context(), app)
			if err != nil {
				return err
			}
			if len(rules) == 0 {
				fmt.Println("No access rules: each app's jobs reach only their own app and its resources.")
				return nil
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "APP\tFROM\tVIA\tCREATED")
			for _, r := range rules {
				via := "pier access allow"
				if r.Resource != "" {
					via = "resource " + r.Resource
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.App, r.From, via, r.CreatedAt.Local().Format("2006-01-02 15:04"))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVarP(&app, "app", "a", "", "only the rules into this app")
	cmd.AddCommand(newAccessChangeCmd(true), newAccessChangeCmd(false))
	return cmd
}

func newAccessChangeCmd(allow bool) *cobra.Command {
	var from string
	use, short := "deny APP --from OTHER", "Stop OTHER's jobs from opening connections to APP's"
	if allow {
		use, short = "allow APP --from OTHER", "Let OTHER's jobs open connections to APP's"
	}
	cmd := &cobra.Command{
		Use: use, Short: short, Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if from == "" {
				return fmt.Errorf("--from OTHER is required: the app whose jobs may (or may no longer) connect to %s", args[0])
			}
			c, err := controllerClient()
			if err != nil {
				return err
			}
			defer c.Close()
			if allow {
				if _, err := c.AllowAccess(cmd.Context(), args[0], from); err != nil {
					return err
				}
				fmt.Printf("Jobs of %s may now open connections to %s.\n", from, args[0])
				return nil
			}
			if err := c.DenyAccess(cmd.Context(), args[0], from); err != nil {
				return err
			}
			fmt.Printf("Jobs of %s may no longer open connections to %s.\n", from, args[0])
			return nil
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "the app whose jobs connect")
	return cmd
}
