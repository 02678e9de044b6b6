package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/coffer-dev/coffer/internal/wire"
)

// printJSON prints v as indented JSON.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// printClusterStatus prints st as tables: nodes, their addresses, groups
// and problems.
func printClusterStatus(w io.Writer, st *wire.ClusterStatus) error {
	fmt.Fprintf(w, "cluster %s  answered by %s  shards %d\n\n", st.ClusterID, st.Node, st.Shards)

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tSTATE\tROLES\tLEADS\tBLOCKS\tLIVE\tDISK\tFREE")
	for _, n := range st.Nodes {
		state := n.State
		if n.Removing {
			state += " (removing)"
		}
		blocks, live, disk, free := "-", "-", "-", "-"
		if b := n.Block; b != nil {
			blocks = strconv.FormatInt(b.Blocks, 10)
			live, disk, free = humanBytes(b.LiveBytes), humanBytes(b.DiskBytes), humanBytes(b.FreeBytes)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", n.Name, state, orDash(strings.Join(n.Roles, ",")),
			orDash(joinIDs(n.Leads)), blocks, live, disk, free)
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "NODE\tHTTP\tGOSSIP\tRAFT\tGRPC")
	for _, n := range st.Nodes {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", n.Name, orDash(n.HTTP), orDash(n.Gossip), orDash(n.Raft), orDash(n.GRPC))
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "GROUP\tKIND\tLEADER\tTERM\tCOMMIT\tAPPLIED\tREPLICAS (applied)")
	for _, g := range st.Groups {
		var reps []string
		for _, r := range g.Replicas {
			name := r.Node
			if r.Suffrage != "" && r.Suffrage != "voter" {
				name += "(" + r.Suffrage + ")"
			}
			reps = append(reps, fmt.Sprintf("%s=%d", name, r.Applied))
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%d\t%d\t%s\n", g.ID, g.Kind, orDash(g.Leader), g.Term, g.Commit, g.Applied,
			orDash(strings.Join(reps, " ")))
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	if len(st.Problems) > 0 {
		fmt.Fprintln(w, "\nPROBLEMS")
		for _, p := range st.Problems {
			fmt.Fprintf(w, "  %s\n", p)
		}
	}
	return nil
}

// printRemoveNode prints the answer to a node removal.
func printRemoveNode(w io.Writer, res *wire.RemoveNodeResult) error {
	_, err := fmt.Fprintf(w, "node %s: %s\n", res.Node, res.State)
	return err
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func joinIDs(ids []uint64) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.FormatUint(id, 10)
	}
	return strings.Join(s, ",")
}

// humanBytes formats n in IEC units: 0 B, 1023 B, 1.0 KiB, 1.5 GiB.
func humanBytes(n int64) string {
	if n < 1024 {
		return strconv.FormatInt(n, 10) + " B"
	}
	f := float64(n)
	units := []string{"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	u := -1
	for f >= 1023.95 && u < len(units)-1 { // so that 1023.96 KiB prints as 1.0 MiB
		f /= 1024
		u++
	}
	return fmt.Sprintf("%.1f %s", f, units[u])
}
