// Package syncer keeps a local folder and a remote folder identical, in
// both directions, by a three-way comparison of the local tree, the remote
// tree and the last synced state (the merge base). See DESIGN.md.
package syncer
