// Package gc deletes blocks that no live file references (mark-and-sweep with
// a grace period).
//
// # A run
//
// The caller marks: it builds a LiveSet holding every block ref named by
// any retained file revision (an ExactSet, or one BloomFilter per metadata
// shard merged into one). A run sweeps one block store: with a cutoff time
// fixed for the whole run, it walks the store (Enumerate) and, for each
// block,
//
//   - keeps it if the live set contains it (Report.Live);
//   - else keeps it if its StoredAt is at or after the cutoff
//     (Report.Young), whatever the mark says;
//   - else deletes it with Store.Delete(ctx, ref, cutoff), which removes
//     it only if its StoredAt is still before the cutoff at that instant,
//     atomically with Put's refresh of StoredAt. A block re-put after the
//     walk saw it is thus refused (Report.Raced) and kept.
//
// A dry run counts the candidates instead (Report.WouldDelete,
// Report.BytesWouldFree). Config.DeleteRate and Config.MaxDeletes bound the
// work; a failed Delete is logged, counted and skipped.
//
// # Safety
//
// A block is deleted only if it is not in the live set and its StoredAt
// (its last Put) is before the cutoff C when Delete runs. It is therefore
// safe if (a) a committed revision that is in the live set names it, or
// (b) it was put or re-put at or after C. Whether every block some file
// needs falls under (a) or (b) depends on rules this package cannot check:
//
//   - Snapshot: the live set holds every ref named by every revision
//     retained in a consistent snapshot of each metadata shard, taken at
//     time T (the earliest of the shards'): current and older revisions,
//     deleted files' histories, deleted users' namespaces not yet
//     reclaimed, every shard (dedup is global). A snapshot's time is that
//     of the state it reads: a stale follower's state is older than the
//     read. A scan that is not one snapshot (pages read while commits and
//     pruning go on) does not qualify.
//   - Commit window D: when a commit naming block B applies at time Tc,
//     either B was put or re-put on this store after Tc - D (an upload
//     re-puts every block it uses, even one the store already has, which
//     refreshes its StoredAt), or B is named by a revision still retained
//     when the commit applies (a move, a restore, an upload that skipped a
//     block its namespace already references; the state machine can check
//     this atomically when it applies the commit). A gateway's Has check
//     before the commit does not replace this rule: it is not atomic with
//     a concurrent Delete.
//   - Order: C <= T - D.
//   - Clock: StoredAt and C come from the same clock (run the collector on
//     the block node, with the store's clock); an offset between the two
//     clocks adds to D.
//
// Under these rules a run never deletes a block named by a revision that
// was retained at T or committed after T. Such a revision committed before
// T is in the live set. One committed at Tc > T either had its block put
// at Tp > Tc - D > T - D >= C, so from Tp on the store refuses
// Delete(ref, C), and a Delete before Tp is undone by that Put; or it
// relies on a revision retained when it applied, which (retention being
// monotonic) was retained from its own commit on: if that was before T it
// is in the live set, otherwise the same argument applies to it, and the
// chain ends.
//
// The two entry points meet the order rule differently:
//
//   - Cutoff then RunAt (preferred): the caller takes cutoff :=
//     Cutoff(cfg) = Now() - Grace, then builds the live set (every shard's
//     snapshot begins after that), then calls RunAt with that cutoff. Then
//     T >= C + Grace, so the rule holds if Grace >= D, however long the
//     live set took to build.
//   - Run takes C = Now() - Grace when it starts, after the live set was
//     built, so the rule holds only if the live set's snapshot was taken
//     no more than Grace - D before Run is called. Use it with a live set
//     built just before, and D well under Grace (for example uploads
//     committed within 12 h of their Puts and the default 24 h grace: the
//     live set may then be up to 12 h old).
//
// What is not guaranteed: blocks named only by revisions pruned before T
// are garbage and go (undo ends at retention). A commit that breaks the
// commit-window rule (an upload paused for longer than D and committed
// without re-putting its blocks, or a client that skips a block because
// the store, rather than its namespace, already has it) can name a block a
// run deletes. A backward step of the block node's clock shortens the grace
// period by that much. An incomplete live set (a shard left out) deletes
// live data: the caller must make sure every shard contributed;
// BloomFilter.UnmarshalBinary refuses a damaged or truncated filter and
// Merge refuses filters of different geometry, and the zero BloomFilter
// contains every ref. With replication, the argument holds on each store
// the upload put to; a store that was not re-put may drop its old copy of
// a live block, which repair then restores from the others.
//
// DESIGN.md beside this file says the same at more length.
package gc
