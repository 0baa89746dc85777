package cli

import (
	"github.com/spf13/cobra"

	"github.com/pierpaas/pier/appliance/postgres"
	"github.com/pierpaas/pier/appliance/redis"
)

// newPgMemberCmd is what a PostgreSQL resource's member job runs (see
// appliance/postgres): hidden, like slugrun, since only jobs run it.
func newPgMemberCmd() *cobra.Command {
	return &cobra.Command{
		Use:    postgres.MemberCommand,
		Short:  "Run a PostgreSQL resource's member (inside its job)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := postgres.MemberConfigFromEnv()
			if err != nil {
				return err
			}
			return postgres.RunMember(cmd.Context(), cfg)
		},
	}
}

// newRedisMemberCmd is what a Redis resource's member job runs (see
// appliance/redis).
func newRedisMemberCmd() *cobra.Command {
	return &cobra.Command{
		Use:    redis.MemberCommand,
		Short:  "Run a Redis resource's member (inside its job)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE:   func(*cobra.Command, []string) error { return redis.RunMember() },
	}
}
