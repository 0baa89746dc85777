package cli

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/pierpaas/pier/internal/cliconfig"
)

func newClusterCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Manage the clusters the CLI talks to (~/.config/pier/config.json)",
	}
	var caFile string
	var makeDefault bool
	add := &cobra.Command{
		Use:   "add NAME URL KEY",
		Short: "Add (or replace) a cluster",
		Args:  cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl := cliconfig.Cluster{Name: args[0], URL: args[1], Key: args[2]}
			if caFile != "" {
				b, err := os.ReadFile(caFile)
				if err != nil {
					return err
				}
				cl.CAPEM = string(b)
			}
			return editConfig(func(cfg *cliconfig.Config) error {
				return cfg.Add(cl, makeDefault || cfg.Default == "")
			})
		},
	}
	add.Flags().StringVar(&caFile, "ca", "", "the cluster CA's certificate (PEM), the only one trusted for it")
	add.Flags().BoolVar(&makeDefault, "default", false, "make it the default cluster")
	var asJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List clusters; * marks the default",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, _, err := loadConfig()
			if err != nil {
				return err
			}
			if asJSON {
				out := make([]map[string]any, 0, len(cfg.Clusters))
				for _, c := range cfg.Clusters {
					out = append(out, map[string]any{"name": c.Name, "url": c.URL, "default": c.Name == cfg.Default})
				}
				return printJSON(os.Stdout, out)
			}
			rows := [][]string{}
			for _, c := range cfg.Clusters {
				mark := ""
				if c.Name == cfg.Default {
					mark = "*"
				}
				rows = append(rows, []string{mark, c.Name, c.URL})
			}
			table(os.Stdout, []string{"", "NAME", "URL"}, rows)
			return nil
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	def := &cobra.Command{
		Use:   "default NAME",
		Short: "Make a cluster the default",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return editConfig(func(cfg *cliconfig.Config) error { return cfg.SetDefault(args[0]) })
		},
	}
	remove := &cobra.Command{
		Use:   "remove NAME",
		Short: "Forget a cluster",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return editConfig(func(cfg *cliconfig.Config) error {
				if !cfg.Remove(args[0]) {
					return fmt.Errorf("no cluster %q", args[0])
				}
				return nil
			})
		},
	}
	cmd.AddCommand(add, list, def, remove, newClusterUpgradeCmd(), newClusterUpgradeStatusCmd())
	cmd.AddCommand(newClusterBackupCmd(), newClusterRestoreCmd())
	return cmd
}

func loadConfig() (*cliconfig.Config, string, error) {
	path, err := cliconfig.DefaultPath()
	if err != nil {
		return nil, "", err
	}
	cfg, err := cliconfig.Load(path)
	return cfg, path, err
}

func editConfig(change func(*cliconfig.Config) error) error {
	cfg, path, err := loadConfig()
	if err != nil {
		return err
	}
	if err := change(cfg); err != nil {
		return err
	}
	return cfg.Save(path)
}
