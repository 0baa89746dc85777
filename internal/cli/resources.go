package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/client"
)

// resourceCommands are Heroku's addons verbs (Dokku's too) for pier's
// datastores: resources, resources:add, :info, :attach, :detach,
// :remove, and pg:info and pg:psql.
func resourceCommands() []*cobra.Command {
	return append([]*cobra.Command{newResourcesCmd(), newResourcesAddCmd(), newResourcesInfoCmd(), newResourcesAttachCmd(),
		newResourcesDetachCmd(), newResourcesRemoveCmd(), newPgInfoCmd(), newPgPsqlCmd(), newPgRotateCmd(), newRedisCLICmd()}, append(pgBackupCommands(), redisBackupCommands()...)...)
}

// resourceWait bounds how long a command waits for the cluster to carry
// out a change (a first start makes a data directory).
const resourceWait = 3 * time.Minute

func newResourcesCmd() *cobra.Command {
	return listing[api.Resource]{
		Use: "resources", Short: "List the resources (databases): state, size, address and attached apps",
		Header: []string{"NAME", "TYPE", "STATE", "SIZE", "ADDRESS", "ATTACHED"},
		Empty:  "No resources. Add one with pier resources:add postgres -a APP",
		Row: func(r api.Resource) []string {
			var apps []string
			for _, a := range r.Attachments {
				s := a.App
				if a.State != api.AttachmentAttached {
					s += " (" + string(a.State) + ")"
				}
				apps = append(apps, s)
			}
			return []string{r.Name, r.Type, string(r.State), sizeMB(r.SizeMB), orDash(r.Address), orDash(strings.Join(apps, ", "))}
		},
	}.command((*client.Controller).Resources)
}

func sizeMB(mb int64) string {
	if mb >= 1024 && mb%1024 == 0 {
		return strconv.FormatInt(mb/1024, 10) + " GB"
	}
	return strconv.FormatInt(mb, 10) + " MB"
}

func newResourcesAddCmd() *cobra.Command {
	var app, name, size string
	var noWait bool
	cmd := clientAction(&cobra.Command{
		Use:   "resources:add TYPE [-a APP] [--name NAME] [--size 10G]",
		Short: "Provision a resource (postgres, redis) and attach it to an app",
		Long: `Provision a resource: a PostgreSQL server that runs as the only job of a
system app of its own (pg-NAME), with its data on a volume of --size.
With -a, the app is attached as soon as the server answers: it gets a
database and a login role of its own, and DATABASE_URL in a new release,
which redeploys it. A redis resource is a Redis server, likewise: the app
gets a user of its own and REDIS_URL. pier waits for all of that unless
--no-wait.`,
		Args: cobra.ExactArgs(1),
	}, func(cmd *cobra.Command, c *client.Controller, args []string) error {
		req := api.CreateResourceRequest{Type: args[0], Name: name, App: app}
		if size != "" {
			mb, err := api.ParseSizeMB(size)
			if err != nil {
				return err
			}
			req.SizeMB = mb
		}
		ctx := cmd.Context()
		res, err := c.CreateResource(ctx, req)
		if err != nil {
			return err
		}
		progress("-----> provisioning %s %s (%s)", res.Type, res.Name, sizeMB(res.SizeMB))
		if noWait {
			fmt.Println(res.Name)
			return nil
		}
		res, err = waitResource(ctx, c, res.Name, func(r api.Resource) bool {
			return r.State == api.ResourceAvailable && allAttached(r)
		})
		if err != nil {
			return err
		}
		fmt.Printf("Created %s (%s) at %s\n", res.Name, res.Type, res.Address)
		for _, a := range res.Attachments {
			fmt.Printf("Attached to %s as %s (release v%d)\n", a.App, a.EnvVar, a.Release)
		}
		return nil
	})
	fl := cmd.Flags()
	fl.StringVarP(&app, "app", "a", "", "attach the resource to this app")
	fl.StringVar(&name, "name", "", "the resource's name, a DNS label (default: TYPE-RANDOM)")
	fl.StringVar(&size, "size", "", "the size of its volume: 512M, 10G (default 1G)")
	fl.BoolVar(&noWait, "no-wait", false, "return once the resource is requested")
	return cmd
}

func allAttached(r api.Resource) bool {
	for _, a := range r.Attachments {
		if a.State != api.AttachmentAttached {
			return false
		}
	}
	return true
}

// waitResource polls a resource until done says so, showing why a step
// is failing meanwhile. A resource that vanishes ends the wait with
// api.ErrCodeNotFound.
func waitResource(ctx context.Context, c *client.Controller, name string, done func(api.Resource) bool) (api.Resource, error) {
	ctx, cancel := context.WithTimeout(ctx, resourceWait)
	defer cancel()
	var shown string
	for {
		info, err := c.Resource(ctx, name)
		var ae *api.Error
		switch {
		case err == nil && done(info.Resource):
			return info.Resource, nil
		case err == nil && info.Error != "" && info.Error != shown:
			shown = info.Error
			progress("       (still trying: %s)", info.Error)
		case err != nil && !(errors.As(err, &ae) && ae.Status >= 500):
			return api.Resource{}, err
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return info.Resource, fmt.Errorf("resource %s is still %s after %s; see pier resources:info %s and pier logs -a %s",
					name, info.State, resourceWait, name, info.App)
			}
			return info.Resource, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func newResourcesInfoCmd() *cobra.Command {
	var asJSON bool
	cmd := clientAction(&cobra.Command{
		Use:   "resources:info NAME",
		Short: "Show a resource: state, address, host, volume, attachments and server stats",
		Args:  cobra.ExactArgs(1),
	}, func(cmd *cobra.Command, c *client.Controller, args []string) error {
		info, err := c.Resource(cmd.Context(), args[0])
		if err != nil || asJSON {
			return orJSON(info, err)
		}
		printResourceInfo(info)
		return nil
	})
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func printResourceInfo(info api.ResourceInfo) {
	fmt.Printf("=== %s\n", info.Name)
	rows := [][]string{
		{"Type:", info.Type}, {"State:", string(info.State)}, {"Size:", sizeMB(info.SizeMB)},
		{"Address:", orDash(info.Address)}, {"System app:", info.App}, {"Host:", orDash(info.Host)},
		{"Volume:", orDash(info.Volume)}, {"Member:", orDash(info.Member)},
		{"Created:", info.CreatedAt.Local().Format(time.RFC3339)},
	}
	if info.Error != "" {
		rows = append(rows, []string{"Last error:", info.Error})
	}
	for _, a := range info.Attachments {
		rows = append(rows, []string{"Attached:", fmt.Sprintf("%s as %s (%s, database %s)", a.App, a.EnvVar, a.State, a.Database)})
	}
	keys := make([]string, 0, len(info.Stats))
	for k := range info.Stats {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		rows = append(rows, []string{strings.ReplaceAll(k, "_", " ") + ":", info.Stats[k]})
	}
	table(os.Stdout, nil, rows)
}

func newResourcesAttachCmd() *cobra.Command {
	var app string
	cmd := clientAction(&cobra.Command{
		Use:   "resources:attach NAME -a APP",
		Short: "Attach a resource to an app: its own database and role, DATABASE_URL in a new release",
		Args:  cobra.ExactArgs(1),
	}, func(cmd *cobra.Command, c *client.Controller, args []string) error {
		if app == "" {
			return errors.New("which app? give -a APP")
		}
		ctx := cmd.Context()
		if _, err := c.AttachResource(ctx, args[0], app); err != nil {
			return err
		}
		res, err := waitResource(ctx, c, args[0], func(r api.Resource) bool {
			a, ok := r.Attachment(app)
			return ok && a.State == api.AttachmentAttached
		})
		if err != nil {
			return err
		}
		a, _ := res.Attachment(app)
		fmt.Printf("Attached %s to %s as %s (release v%d)\n", res.Name, app, a.EnvVar, a.Release)
		return nil
	})
	cmd.Flags().StringVarP(&app, "app", "a", "", "the app to attach")
	return cmd
}

func newResourcesDetachCmd() *cobra.Command {
	var app string
	cmd := clientAction(&cobra.Command{
		Use:   "resources:detach NAME -a APP",
		Short: "Detach a resource from an app: a release without DATABASE_URL, its role dropped (the data stays)",
		Args:  cobra.ExactArgs(1),
	}, func(cmd *cobra.Command, c *client.Controller, args []string) error {
		if app == "" {
			return errors.New("which app? give -a APP")
		}
		ctx := cmd.Context()
		if _, err := c.DetachResource(ctx, args[0], app); err != nil {
			return err
		}
		if _, err := waitResource(ctx, c, args[0], func(r api.Resource) bool {
			_, ok := r.Attachment(app)
			return !ok
		}); err != nil {
			return err
		}
		fmt.Printf("Detached %s from %s\n", args[0], app)
		return nil
	})
	cmd.Flags().StringVarP(&app, "app", "a", "", "the app to detach")
	return cmd
}

func newResourcesRemoveCmd() *cobra.Command {
	var confirm string
	cmd := clientAction(&cobra.Command{
		Use:   "resources:remove NAME --confirm NAME",
		Short: "Remove a resource: its apps' DATABASE_URL, its server, volume and data, for good",
		Args:  cobra.ExactArgs(1),
	}, func(cmd *cobra.Command, c *client.Controller, args []string) error {
		name := args[0]
		if confirm != name {
			return fmt.Errorf("this deletes resource %s and its data for good; to proceed, run again with --confirm %s", name, name)
		}
		ctx := cmd.Context()
		if _, err := c.RemoveResource(ctx, name, confirm); err != nil {
			return err
		}
		progress("-----> removing %s", name)
		_, err := waitResource(ctx, c, name, func(api.Resource) bool { return false })
		var ae *api.Error
		if errors.As(err, &ae) && ae.Code == api.ErrCodeNotFound {
			fmt.Printf("Removed %s\n", name)
			return nil
		}
		return err
	})
	cmd.Flags().StringVar(&confirm, "confirm", "", "the resource's name, to confirm")
	return cmd
}

// pgResource picks the postgres resource a pg: command is about: the
// one named, else the only one attached to app (if given), else the
// only one there is.
func pgResource(ctx context.Context, c *client.Controller, args []string, app string) (string, error) {
	return typedResource(ctx, c, "postgres", args, app)
}

// typedResource is pgResource for resources of type typ.
func typedResource(ctx context.Context, c *client.Controller, typ string, args []string, app string) (string, error) {
	if len(args) == 1 {
		return args[0], nil
	}
	all, err := c.Resources(ctx)
	if err != nil {
		return "", err
	}
	var names []string
	for _, r := range all {
		if r.Type != typ {
			continue
		}
		if _, ok := r.Attachment(app); app == "" || ok {
			names = append(names, r.Name)
		}
	}
	switch len(names) {
	case 1:
		return names[0], nil
	case 0:
		return "", fmt.Errorf("no %s resource; add one with pier resources:add %s", typ, typ)
	}
	return "", fmt.Errorf("several %s resources (%s); name one", typ, strings.Join(names, ", "))
}

func newPgInfoCmd() *cobra.Command {
	var app string
	cmd := clientAction(&cobra.Command{
		Use:   "pg:info [NAME]",
		Short: "Show a PostgreSQL resource and what its server says (version, size, connections)",
		Args:  cobra.MaximumNArgs(1),
	}, func(cmd *cobra.Command, c *client.Controller, args []string) error {
		name, err := pgResource(cmd.Context(), c, args, app)
		if err != nil {
			return err
		}
		info, err := c.Resource(cmd.Context(), name)
		if err != nil {
			return err
		}
		printResourceInfo(info)
		return nil
	})
	cmd.Flags().StringVarP(&app, "app", "a", "", "the resource attached to this app")
	return cmd
}

func newPgPsqlCmd() *cobra.Command {
	var app, command string
	cmd := clientAction(&cobra.Command{
		Use:   "pg:psql [NAME] [-a APP] [-c SQL]",
		Short: "Open psql on a PostgreSQL resource, through the cluster",
		Long: `Run psql as a one-off job on the cluster, attached to this terminal, against
a PostgreSQL resource: with -a, as that app's role on its database, else
as the superuser. It works from any machine that reaches the API: the
password never leaves the cluster. -c runs one command and exits.`,
		Args: cobra.MaximumNArgs(1),
	}, func(cmd *cobra.Command, c *client.Controller, args []string) error {
		ctx := cmd.Context()
		name, err := pgResource(ctx, c, args, app)
		if err != nil {
			return err
		}
		tty := command == "" && term.IsTerminal(int(os.Stdin.Fd())) && term.IsTerminal(int(os.Stdout.Fd()))
		return runAttached(ctx, &psqlTarget{controllerTarget: controllerTarget{c: c}, name: name,
			req: api.PsqlRequest{App: app, Command: command}}, tty)
	})
	cmd.Flags().StringVarP(&app, "app", "a", "", "connect as this app's role, to its database")
	cmd.Flags().StringVarP(&command, "command", "c", "", "run this SQL and exit")
	return cmd
}

// psqlTarget runs psql as a one-off job of the resource's system app;
// once started it is attached to like any one-off.
type psqlTarget struct {
	controllerTarget
	name string
	req  api.PsqlRequest
}

func (t *psqlTarget) start(ctx context.Context, tty bool) (string, error) {
	req := t.req
	req.Stdin, req.TTY = true, tty
	job, err := t.c.Psql(ctx, t.name, req)
	t.app = job.App
	return job.ID, err
}

func newPgRotateCmd() *cobra.Command {
	var app string
	cmd := clientAction(&cobra.Command{
		Use:   "pg:credentials:rotate [NAME] [-a APP]",
		Short: "Give the attached apps (or one) new database credentials, with no failed request",
		Long: `Rotate credentials: each attached app (or APP) gets a new login and
password, is released with the new DATABASE_URL and redeployed; once no
job of the old release is left, the old password stops working. Both work
meanwhile, so the app serves throughout. pier waits for all of that.`,
		Args: cobra.MaximumNArgs(1),
	}, func(cmd *cobra.Command, c *client.Controller, args []string) error {
		ctx := cmd.Context()
		name, err := pgResource(ctx, c, args, app)
		if err != nil {
			return err
		}
		before, err := c.RotateCredentials(ctx, name, app)
		if err != nil {
			return err
		}
		progress("-----> rotating the credentials of %s", name)
		res, err := waitResource(ctx, c, name, func(r api.Resource) bool {
			for _, a := range r.Attachments {
				if a.State == api.AttachmentRotating {
					return false
				}
			}
			return true
		})
		if err != nil {
			return err
		}
		failed := false
		for _, a := range res.Attachments {
			if app != "" && a.App != app {
				continue
			}
			if old, ok := before.Attachment(a.App); ok && old.LoginRole() == a.LoginRole() {
				failed = true
				continue
			}
			fmt.Printf("Rotated %s's credentials: %s logs in as %s (release v%d)\n", a.App, a.EnvVar, a.LoginRole(), a.Release)
		}
		if failed {
			return fmt.Errorf("not every rotation took: %s", orDash(res.Error))
		}
		return nil
	})
	cmd.Flags().StringVarP(&app, "app", "a", "", "rotate only this app's credentials")
	return cmd
}

func newRedisCLICmd() *cobra.Command {
	var app, command string
	cmd := clientAction(&cobra.Command{
		Use:   "redis:cli [NAME] [-a APP] [-c 'COMMAND ARGS']",
		Short: "Open redis-cli on a Redis resource, through the cluster",
		Long: `Run redis-cli as a one-off job on the cluster, attached to this terminal,
against a Redis resource: with -a, as that app's user, else as the
default user. -c runs one command (its words are redis-cli's arguments;
no shell) and exits.`,
		Args: cobra.MaximumNArgs(1),
	}, func(cmd *cobra.Command, c *client.Controller, args []string) error {
		ctx := cmd.Context()
		name, err := typedResource(ctx, c, "redis", args, app)
		if err != nil {
			return err
		}
		tty := command == "" && term.IsTerminal(int(os.Stdin.Fd())) && term.IsTerminal(int(os.Stdout.Fd()))
		return runAttached(ctx, &psqlTarget{controllerTarget: controllerTarget{c: c}, name: name,
			req: api.PsqlRequest{App: app, Command: command}}, tty)
	})
	cmd.Flags().StringVarP(&app, "app", "a", "", "connect as this app's user")
	cmd.Flags().StringVarP(&command, "command", "c", "", "run this command and exit")
	return cmd
}
