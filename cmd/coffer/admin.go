package main

import (
	"github.com/spf13/cobra"
)

// adminCommand is `coffer admin`: cluster administration.
func (a *app) adminCommand() *cobra.Command {
	admin := groupCommand(&cobra.Command{Use: "admin", Short: "Administer the cluster (admin users only)"})

	cluster := groupCommand(&cobra.Command{Use: "cluster", Short: "The cluster as a whole"})
	cluster.AddCommand(&cobra.Command{
		Use:   "status",
		Short: "Show the cluster's nodes, Raft groups and problems",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			st, err := c.ClusterStatus(cmd.Context())
			if err != nil {
				return err
			}
			if a.json {
				return printJSON(a.stdout, st)
			}
			return printClusterStatus(a.stdout, st)
		},
	})

	node := groupCommand(&cobra.Command{Use: "node", Short: "One node"})
	node.AddCommand(&cobra.Command{
		Use:   "remove NAME",
		Short: "Remove a node: move its replicas elsewhere, then drop it from the cluster",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			res, err := c.RemoveNode(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if a.json {
				return printJSON(a.stdout, res)
			}
			return printRemoveNode(a.stdout, res)
		},
	})

	admin.AddCommand(cluster, node)
	return admin
}
