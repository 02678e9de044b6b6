package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/coffer-dev/coffer/client"
	"github.com/coffer-dev/coffer/internal/wire"
)

// revisionJSON is a revision as `history --json` prints it.
type revisionJSON struct {
	Rev          uint64 `json:"rev"`
	Op           string `json:"op"`
	Time         int64  `json:"time"`
	Size         int64  `json:"size"`
	Mtime        int64  `json:"mtime"`
	Mode         uint32 `json:"mode"`
	Deleted      bool   `json:"deleted"`
	Dir          bool   `json:"dir,omitempty"`
	ContentHash  string `json:"content_hash"`
	Hash         string `json:"hash"` // the same as content_hash, named as in the API
	RestoredFrom uint64 `json:"restored_from,omitempty"`
}

func (a *app) addFileCommands(root *cobra.Command) {
	root.AddCommand(a.lsCommand(), a.putCommand(), a.getCommand(), a.rmCommand(), a.mvCommand(),
		a.mkdirCommand(), a.historyCommand(), a.restoreCommand())
}

// printResult prints the answer to a one-revision change.
func (a *app) printResult(verb string, res *wire.FileResult) error {
	if a.json {
		return printJSON(a.stdout, res)
	}
	_, err := fmt.Fprintf(a.stdout, "%s %s (rev %d)\n", verb, res.Path, res.Rev)
	return err
}

func fmtTime(ns int64) string {
	if ns == 0 {
		return "-"
	}
	return time.Unix(0, ns).Local().Format(time.DateTime)
}

func (a *app) lsCommand() *cobra.Command {
	var recursive, deleted bool
	cmd := &cobra.Command{
		Use:   "ls [PATH]",
		Short: "List a folder (or show a file)",
		Args:  usageArgs(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			p := "/"
			if len(args) == 1 {
				p = args[0]
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			entries, err := c.ListAll(cmd.Context(), p, client.ListOptions{Recursive: recursive, Deleted: deleted})
			var ce *client.Error
			if errors.As(err, &ce) && ce.Code == "not_a_folder" {
				var e *client.Entry
				if e, err = c.Stat(cmd.Context(), p, deleted); err == nil {
					entries = []client.Entry{*e}
				}
			}
			if err != nil {
				return err
			}
			if a.json {
				if entries == nil {
					entries = []client.Entry{}
				}
				return printJSON(a.stdout, entries)
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
			for _, e := range entries {
				mode := fs.FileMode(e.Mode).String()
				if e.Dir {
					mode = "d" + mode[1:]
				}
				name := e.Path
				if !recursive {
					name = e.Name
				}
				if e.Dir {
					name += "/"
				}
				if e.Deleted {
					name += " (deleted)"
				}
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", mode, e.Rev, humanBytes(e.Size), fmtTime(e.Mtime), name)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVarP(&recursive, "recursive", "r", false, "list the whole subtree")
	cmd.Flags().BoolVar(&deleted, "deleted", false, "include deleted files")
	return cmd
}

func (a *app) putCommand() *cobra.Command {
	var recursive, ifNoneMatch bool
	var ifMatch uint64
	cmd := &cobra.Command{
		Use:   "put LOCAL REMOTE",
		Short: "Upload a file (or a folder with -r); only blocks the server lacks are sent",
		Args:  usageArgs(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			local, remote := args[0], args[1]
			st, err := os.Stat(local)
			if err != nil {
				return err
			}
			if st.IsDir() && !recursive {
				return usageErrorf("%s is a folder: use -r", local)
			}
			if st.IsDir() && (ifMatch != 0 || ifNoneMatch) {
				return usageErrorf("--if-match and --if-none-match apply to one file, not a folder")
			}
			if strings.HasSuffix(remote, "/") {
				remote = path.Join(remote, filepath.Base(local))
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			opts := client.UploadOptions{IfMatch: ifMatch, IfNoneMatch: ifNoneMatch}
			var p *progress
			if a.tty {
				total, label := st.Size(), filepath.Base(local)
				if st.IsDir() {
					total, label = treeSize(local), label+"/"
				}
				p = a.startProgress(label, total)
				defer p.finish()
			}
			var results []*client.UploadResult
			put := func(file, to string, st fs.FileInfo) error {
				f, err := os.Open(file)
				if err != nil {
					return err
				}
				defer f.Close()
				o := opts
				o.Mtime, o.Mode = st.ModTime(), uint32(st.Mode().Perm())
				res, err := c.Upload(cmd.Context(), p.reader(f), to, o)
				if err != nil {
					return err
				}
				results = append(results, res)
				if !a.json {
					p.printf(a.stdout, "put %s (rev %d, %s, %d of %d blocks sent)\n", res.Path, res.Rev,
						humanBytes(res.Size), res.Sent, res.Blocks)
				}
				return nil
			}
			if !st.IsDir() {
				err = put(local, remote, st)
			} else {
				err = filepath.WalkDir(local, func(file string, d fs.DirEntry, err error) error {
					if err != nil {
						return err
					}
					rel, err := filepath.Rel(local, file)
					if err != nil {
						return err
					}
					to := path.Join(remote, filepath.ToSlash(rel))
					switch {
					case d.IsDir():
						if _, err := c.Mkdir(cmd.Context(), to); err != nil && !errors.Is(err, client.ErrExists) {
							return err
						}
						return nil
					case d.Type().IsRegular():
						info, err := d.Info()
						if err != nil {
							return err
						}
						return put(file, to, info)
					}
					p.printf(a.stderr, "coffer: skipping %s: not a regular file\n", file)
					return nil
				})
			}
			p.finish()
			if a.json {
				if results == nil {
					results = []*client.UploadResult{}
				}
				if jerr := printJSON(a.stdout, results); err == nil {
					err = jerr
				}
			}
			return err
		},
	}
	cmd.Flags().BoolVarP(&recursive, "recursive", "r", false, "upload a folder and everything in it")
	cmd.Flags().Uint64Var(&ifMatch, "if-match", 0, "only if the remote file's current revision is this")
	cmd.Flags().BoolVar(&ifNoneMatch, "if-none-match", false, "only if nothing is at the remote path (create only)")
	return cmd
}

func (a *app) getCommand() *cobra.Command {
	var rev uint64
	cmd := &cobra.Command{
		Use:   "get REMOTE LOCAL",
		Short: "Download a file, verified against its SHA-256",
		Args:  usageArgs(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			remote, local := args[0], args[1]
			if st, err := os.Stat(local); err == nil && st.IsDir() {
				local = filepath.Join(local, path.Base(remote))
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			var p *progress
			if a.tty {
				// Only for the progress line: the size, when it is known.
				total := int64(-1)
				if e, err := c.Stat(cmd.Context(), remote, false); err == nil && !e.Dir && (rev == 0 || rev == e.Rev) {
					total = e.Size
				}
				p = a.startProgress(path.Base(remote), total)
				defer p.finish()
			}
			info, err := download(cmd, c, remote, rev, local, p)
			p.finish()
			if err != nil {
				return err
			}
			if a.json {
				return printJSON(a.stdout, map[string]any{"path": remote, "local": local, "rev": info.Rev,
					"size": info.Size, "content_hash": info.Hash})
			}
			_, err = fmt.Fprintf(a.stdout, "got %s (rev %d, %s) into %s\n", remote, info.Rev, humanBytes(info.Size), local)
			return err
		},
	}
	cmd.Flags().Uint64Var(&rev, "rev", 0, "the revision to get (default: the current one)")
	return cmd
}

// treeSize is the size of the regular files under dir (-1 if the walk
// fails).
func treeSize(dir string) int64 {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		n += info.Size()
		return nil
	})
	if err != nil {
		return -1
	}
	return n
}

// download fetches remote (counting the bytes in p) into a temporary file beside local, syncs it and
// renames it into place once the content hash checks out.
func download(cmd *cobra.Command, c *client.Client, remote string, rev uint64, local string, p *progress) (*client.FileInfo, error) {
	f, err := os.CreateTemp(filepath.Dir(local), "."+filepath.Base(local)+".coffer-*")
	if err != nil {
		return nil, err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	info, err := c.Download(cmd.Context(), remote, rev, p.writer(f))
	if err != nil {
		return nil, err
	}
	if info.Mode != 0 {
		if err := f.Chmod(fs.FileMode(info.Mode) & fs.ModePerm); err != nil {
			return nil, err
		}
	}
	if err := f.Sync(); err != nil {
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	if !info.Mtime.IsZero() {
		if err := os.Chtimes(tmp, time.Time{}, info.Mtime); err != nil {
			return nil, err
		}
	}
	if err := os.Rename(tmp, local); err != nil {
		return nil, err
	}
	ok = true
	// Make the rename itself durable.
	if d, err := os.Open(filepath.Dir(local)); err == nil {
		err = d.Sync()
		d.Close()
		if err != nil {
			return nil, fmt.Errorf("sync %s: %w", filepath.Dir(local), err)
		}
	}
	return info, nil
}

func (a *app) rmCommand() *cobra.Command {
	var ifMatch uint64
	cmd := &cobra.Command{
		Use:   "rm PATH",
		Short: "Delete a file, or a folder and everything in it (restorable from history)",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			res, err := c.Delete(cmd.Context(), args[0], ifMatch)
			if err != nil {
				return err
			}
			return a.printResult("deleted", res)
		},
	}
	cmd.Flags().Uint64Var(&ifMatch, "if-match", 0, "only if the current revision is this")
	return cmd
}

func (a *app) mvCommand() *cobra.Command {
	var ifMatch uint64
	cmd := &cobra.Command{
		Use:   "mv FROM TO",
		Short: "Rename or move a file or folder",
		Args:  usageArgs(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			res, err := c.Move(cmd.Context(), args[0], args[1], ifMatch)
			if err != nil {
				return err
			}
			return a.printResult("moved to", res)
		},
	}
	cmd.Flags().Uint64Var(&ifMatch, "if-match", 0, "only if FROM's current revision is this")
	return cmd
}

func (a *app) mkdirCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "mkdir PATH",
		Short: "Create a folder and any missing parents",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			res, err := c.Mkdir(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return a.printResult("created", res)
		},
	}
}

func (a *app) historyCommand() *cobra.Command {
	var limit int
	cmd := &cobra.Command{
		Use:   "history PATH",
		Short: "List the retained revisions of a file, newest first, deletions included",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			revs, err := c.History(cmd.Context(), args[0], limit)
			if err != nil {
				return err
			}
			if a.json {
				out := make([]revisionJSON, len(revs))
				for i, r := range revs {
					out[i] = revisionJSON{Rev: r.Rev, Op: r.Op, Time: r.Time, Size: r.Size, Mtime: r.Mtime, Mode: r.Mode,
						Deleted: r.Deleted, Dir: r.Dir, ContentHash: r.Hash, Hash: r.Hash, RestoredFrom: r.RestoredFrom}
				}
				return printJSON(a.stdout, out)
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "REV\tOP\tSIZE\tMTIME\tSAVED\tHASH")
			for _, r := range revs {
				op := r.Op
				if r.RestoredFrom != 0 {
					op = fmt.Sprintf("%s (of rev %d)", op, r.RestoredFrom)
				}
				size, hash := humanBytes(r.Size), r.Hash
				if r.Deleted {
					size, hash = "-", "(deleted)"
				} else if len(hash) > 12 {
					hash = hash[:12]
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", r.Rev, op, size, fmtTime(r.Mtime), fmtTime(r.Time), hash)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 0, "at most this many revisions (default: the server's, 100)")
	return cmd
}

func (a *app) restoreCommand() *cobra.Command {
	var rev, ifMatch uint64
	cmd := &cobra.Command{
		Use:   "restore PATH --rev N",
		Short: "Bring back revision N of a file (also a deleted one) as its new revision",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if rev == 0 {
				return usageErrorf("--rev is required")
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			res, err := c.Restore(cmd.Context(), wire.RestoreRequest{Path: args[0], Rev: rev, IfMatch: ifMatch})
			if err != nil {
				return err
			}
			return a.printResult("restored", res)
		},
	}
	cmd.Flags().Uint64Var(&rev, "rev", 0, "the revision to bring back (required)")
	cmd.Flags().Uint64Var(&ifMatch, "if-match", 0, "only if the current revision is this")
	return cmd
}
