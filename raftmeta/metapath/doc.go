// Package metapath validates and normalises the paths and names of Coffer's file tree.
package metapath
