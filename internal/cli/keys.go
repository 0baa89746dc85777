package cli

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/client"
)

// keysCommands are `pier keys`, `keys add FILE`, `keys remove KEY` and
// Heroku's keys:add and keys:remove.
func keysCommands() []*cobra.Command {
	keys := listing[api.SSHKey]{
		Use: "keys", Short: "List the SSH keys that may git push to the cluster",
		Header: []string{"FINGERPRINT", "COMMENT", "ADDED"},
		Row:    func(k api.SSHKey) []string { return []string{k.Fingerprint, orDash(k.Comment), ago(k.CreatedAt)} },
	}.command((*client.Controller).SSHKeys)
	add := func(use string) *cobra.Command {
		return &cobra.Command{
			Use:   use + " FILE",
			Short: "Register an SSH public key (e.g. ~/.ssh/id_ed25519.pub) for git push",
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				data, err := os.ReadFile(args[0])
				if err != nil {
					return err
				}
				if strings.Contains(string(data), "PRIVATE KEY") {
					return fmt.Errorf("%s is a private key: give the public one (%s.pub)", args[0], args[0])
				}
				c, err := controllerClient()
				if err != nil {
					return err
				}
				defer c.Close()
				k, err := c.AddSSHKey(cmd.Context(), strings.TrimSpace(string(data)))
				if err != nil {
					return err
				}
				fmt.Printf("Added key %s %s\n", k.Fingerprint, k.Comment)
				return nil
			},
		}
	}
	remove := func(use string) *cobra.Command {
		return clientAction(&cobra.Command{
			Use:   use + " FINGERPRINT|COMMENT",
			Short: "Remove an SSH key",
			Args:  cobra.ExactArgs(1),
		}, func(cmd *cobra.Command, c *client.Controller, args []string) error {
			if err := c.RemoveSSHKey(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Printf("Removed key %s\n", args[0])
			return nil
		})
	}
	keys.AddCommand(add("add"), remove("remove"))
	aliasAdd, aliasRemove := add("keys:add"), remove("keys:remove")
	aliasAdd.Hidden, aliasRemove.Hidden = true, true
	return []*cobra.Command{keys, aliasAdd, aliasRemove}
}
