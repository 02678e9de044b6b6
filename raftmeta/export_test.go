package raftmeta

// SetBeforeReadCheck installs a hook that runs before each leadership
// check of s's linearizable reads. Call it before any read.
func SetBeforeReadCheck(s *Shard, f func()) { s.reads.beforeCheck = f }
