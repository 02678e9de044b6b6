package history

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// File format names and the version this package writes and reads.
const (
	HistoryFormat  = "coffer-jepsen-history"
	TimelineFormat = "coffer-jepsen-timeline"
	FileVersion    = 1
)

// header is what precedes the items in a history or timeline file: one JSON
// object {"format":…,"version":…,"start":…,"ops"|"faults":[…]} with one item
// per line, so that a large history stays readable with line tools.
type header struct {
	Format  string    `json:"format"`
	Version int       `json:"version"`
	Start   time.Time `json:"start"`
}

type historyFile struct {
	header
	Ops []Op `json:"ops"`
}

type timelineFile struct {
	header
	Faults []Fault `json:"faults"`
}

// WriteJSON saves a snapshot of the history (see Ops) to path.
func (r *Recorder) WriteJSON(path string) error {
	return WriteJSON(path, r.start, r.Ops())
}

// WriteJSON saves ops, whose times count from start, to path (replacing it
// atomically), in the form ReadJSON reads.
func WriteJSON(path string, start time.Time, ops []Op) error {
	return writeItems(path, header{HistoryFormat, FileVersion, start}, "ops", ops)
}

// ReadJSON reads a history saved by WriteJSON. A file that is not one is
// an error wrapping ErrFormat.
func ReadJSON(path string) ([]Op, error) {
	var f historyFile
	if err := readFile(path, HistoryFormat, &f, &f.header); err != nil {
		return nil, err
	}
	for i, o := range f.Ops {
		if !o.Status.Valid() {
			return nil, fmt.Errorf("%w: %s: op %d (index %d) has status %q", ErrFormat, path, o.ID, i, o.Status)
		}
	}
	return f.Ops, nil
}

// WriteJSON saves a snapshot of the timeline (see Faults) to path.
func (t *Timeline) WriteJSON(path string) error {
	return writeItems(path, header{TimelineFormat, FileVersion, t.start}, "faults", t.Faults())
}

// ReadTimelineJSON reads a timeline saved by Timeline.WriteJSON. A file that
// is not one is an error wrapping ErrFormat.
func ReadTimelineJSON(path string) ([]Fault, error) {
	var f timelineFile
	if err := readFile(path, TimelineFormat, &f, &f.header); err != nil {
		return nil, err
	}
	return f.Faults, nil
}

func writeItems[T any](path string, h header, field string, items []T) error {
	return writeAtomic(path, func(w io.Writer) error {
		head, err := json.Marshal(h)
		if err != nil {
			return err
		}
		// Open the object, drop the header's closing brace, add the list.
		fmt.Fprintf(w, "%s,%q:[", head[:len(head)-1], field)
		for i, it := range items {
			b, err := json.Marshal(it)
			if err != nil {
				return fmt.Errorf("item %d: %w", i, err)
			}
			sep := ","
			if i == 0 {
				sep = ""
			}
			if _, err := fmt.Fprintf(w, "%s\n%s", sep, b); err != nil {
				return err
			}
		}
		_, err = io.WriteString(w, "\n]}\n")
		return err
	})
}

// writeAtomic writes path through a temporary file in the same folder that
// is synced and renamed over it, so a reader never sees half a file.
func writeAtomic(path string, write func(io.Writer) error) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	bw := bufio.NewWriter(tmp)
	if err = write(bw); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err = bw.Flush(); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func readFile(path, format string, v any, h *header) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrFormat, path, err)
	}
	if h.Format != format || h.Version != FileVersion {
		return fmt.Errorf("%w: %s: format %q version %d, want %q version %d", ErrFormat, path, h.Format, h.Version, format, FileVersion)
	}
	return nil
}
