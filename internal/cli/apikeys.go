package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/client"
)

func newAPIKeysCmd() *cobra.Command {
	cmd := listing[api.APIKey]{
		Use: "api-keys", Short: "List the controller's API keys; create and revoke them to rotate without downtime",
		Header: []string{"ID", "NAME", "CREATED"},
		Row:    func(k api.APIKey) []string { return []string{k.ID, orDash(k.Name), ago(k.CreatedAt)} },
	}.command((*client.Controller).APIKeys)
	create := clientAction(&cobra.Command{
		Use:   "create [NAME]",
		Short: "Create a key and print it (it is shown only once)",
		Args:  cobra.MaximumNArgs(1),
	}, func(cmd *cobra.Command, c *client.Controller, args []string) error {
		name := ""
		if len(args) == 1 {
			name = args[0]
		}
		k, err := c.CreateAPIKey(cmd.Context(), name)
		if err != nil {
			return err
		}
		fmt.Println(k.Key)
		return nil
	})
	revoke := clientAction(&cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a key; clients using it are refused at once",
		Args:  cobra.ExactArgs(1),
	}, func(cmd *cobra.Command, c *client.Controller, args []string) error {
		if err := c.DeleteAPIKey(cmd.Context(), args[0]); err != nil {
			return err
		}
		fmt.Printf("Revoked %s\n", args[0])
		return nil
	})
	cmd.AddCommand(create, revoke)
	return cmd
}
