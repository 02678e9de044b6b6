//go:build !unix

package syncer

import (
	"errors"
	"io/fs"
	"os"
)

// inodeOf is 0 where the file system has no inode numbers: local renames
// then sync as a delete and a create (the content is not sent again: the
// server has its blocks).
func inodeOf(fs.FileInfo) uint64 { return 0 }

func isNotEmpty(err error) bool {
	var pe *os.PathError
	return err != nil && !os.IsNotExist(err) && errors.As(err, &pe)
}
