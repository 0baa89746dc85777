package cli

import (
	"context"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/pierpaas/pier/client"
)

// listing is a command that lists things: a table of one row per item,
// or the items as JSON with --json.
type listing[T any] struct {
	Use, Short, Long string
	Header           []string
	Row              func(T) []string
	// Empty, when set, is printed instead of an empty table; %s is the
	// app.
	Empty string
}

// command lists what fetch returns; fetch is a client method, such as
// (*client.Controller).Apps.
func (l listing[T]) command(fetch func(*client.Controller, context.Context) ([]T, error)) *cobra.Command {
	return l.build(nil, func(c *client.Controller, ctx context.Context, _ string) ([]T, error) { return fetch(c, ctx) })
}

// appCommand lists what fetch returns for an app (-a, $PIER_APP or the
// git remote named pier); fetch is a client method such as
// (*client.Controller).Builds.
func (l listing[T]) appCommand(fetch func(c *client.Controller, ctx context.Context, app string) ([]T, error)) *cobra.Command {
	return l.build(&appCommand{}, fetch)
}

func (l listing[T]) build(ac *appCommand, fetch func(*client.Controller, context.Context, string) ([]T, error)) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use: l.Use, Short: l.Short, Long: l.Long,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var app string
			var c *client.Controller
			var err error
			if ac != nil {
				app, c, err = ac.resolve()
			} else {
				c, err = controllerClient()
			}
			if err != nil {
				return err
			}
			defer c.Close()
			items, err := fetch(c, cmd.Context(), app)
			if err != nil || asJSON {
				return orJSON(items, err)
			}
			if len(items) == 0 && l.Empty != "" {
				fmt.Printf(l.Empty+"\n", app)
				return nil
			}
			rows := [][]string{}
			for _, it := range items {
				rows = append(rows, l.Row(it))
			}
			table(os.Stdout, l.Header, rows)
			return nil
		},
	}
	if ac != nil {
		ac.register(cmd)
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
