package raftmeta

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Tests of the per-namespace block reference index (b ns ref -> count).

// fxRefIndex returns the group's block reference index.
func fxRefIndex(h *fxHarness) map[refKey]uint64 {
	h.t.Helper()
	out := map[refKey]uint64{}
	lo, hi := h.f.k.TagBounds(tagRefs)
	err := h.v().scan(lo, hi, false, func(k, v []byte) (bool, error) {
		if len(k) != len(lo)+8+32 || len(v) != 8 {
			return false, fmt.Errorf("malformed index entry %x = %x", k, v)
		}
		var ref Sum
		copy(ref[:], k[len(lo)+8:])
		out[refKey{beU64(k[len(lo):]), ref}] = beU64(v)
		return true, nil
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return out
}

// fxRecountRefs counts, from the revision records, how many retained
// revisions of each namespace name each ref (once per revision).
func fxRecountRefs(h *fxHarness) map[refKey]uint64 {
	h.t.Helper()
	out := map[refKey]uint64{}
	lo, hi := h.f.k.TagBounds(tagRev)
	err := h.v().scan(lo, hi, false, func(k, v []byte) (bool, error) {
		var r Revision
		if err := json.Unmarshal(v, &r); err != nil {
			return false, err
		}
		seen := map[Sum]bool{}
		for _, b := range r.Blocks {
			if !seen[b.Ref] {
				seen[b.Ref] = true
				out[refKey{beU64(k[len(lo):]), b.Ref}]++
			}
		}
		return true, nil
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return out
}

// fxCheckRefIndex fails unless the index equals a recount.
func fxCheckRefIndex(h *fxHarness, what string) {
	h.t.Helper()
	got, want := fxRefIndex(h), fxRecountRefs(h)
	if len(got) != len(want) {
		h.t.Fatalf("%s: index has %d entries, the revisions name %d (ns, ref) pairs", what, len(got), len(want))
	}
	for k, n := range want {
		if got[k] != n {
			h.t.Fatalf("%s: index counts %d for ns %d ref %x, the revisions %d", what, got[k], k.ns, k.ref[:6], n)
		}
	}
}

func fxReferenced(h *fxHarness, ns uint64, data ...string) []bool {
	h.t.Helper()
	refs := make([]Sum, len(data))
	for i, d := range data {
		refs[i] = fxSum(d)
	}
	out, err := h.v().referenced(ns, refs)
	if err != nil {
		h.t.Fatalf("referenced: %v", err)
	}
	return out
}

func TestRefIndexBasics(t *testing.T) {
	h := fxNew(t)
	alice := h.createUser("alice", 0).Namespace
	bob := h.createUser("bob", 0).Namespace
	fxCheckRefIndex(h, "empty")

	// One revision naming a ref twice counts it once.
	h.must(alice, fxPut("/a", "aaaaaaaabbbb"))
	if got := fxRefIndex(h)[refKey{alice, fxSum("aaaa")}]; got != 1 {
		t.Fatalf("count of a ref named twice by one revision: %d, want 1", got)
	}
	h.must(alice, fxPut("/b", "aaaa"), fxMove("/a", "/c"))
	if got := fxRefIndex(h)[refKey{alice, fxSum("aaaa")}]; got != 3 {
		t.Fatalf("count after a second file and a move: %d, want 3", got)
	}
	fxCheckRefIndex(h, "after puts")
	if got := fxReferenced(h, alice, "aaaa", "bbbb", "cccc"); fmt.Sprint(got) != "[true true false]" {
		t.Fatalf("alice: %v", got)
	}
	// Bob's namespace references nothing of alice's.
	if got := fxReferenced(h, bob, "aaaa", "bbbb"); fmt.Sprint(got) != "[false false]" {
		t.Fatalf("bob: %v", got)
	}
	// A refused commit changes nothing.
	before := fxRefIndex(h)
	h.refused(alice, fxPut("/d", "cccc"), fxPutIf("/b", "dddd", 99))
	if got := fxRefIndex(h); fmt.Sprint(got) != fmt.Sprint(before) {
		t.Fatalf("a refused commit changed the index: %v -> %v", before, got)
	}
	// Deleted files keep their revisions, so their blocks stay referenced
	// until retention prunes them.
	h.must(alice, fxDel("/c"), fxDel("/b"))
	if got := fxReferenced(h, alice, "aaaa", "bbbb"); fmt.Sprint(got) != "[true true]" {
		t.Fatalf("after delete: %v", got)
	}
	fxCheckRefIndex(h, "after delete")
	h.now += int64(48 * time.Hour)
	h.pruneAll(time.Hour, 0, 2)
	if got := fxReferenced(h, alice, "aaaa", "bbbb"); fmt.Sprint(got) != "[false false]" {
		t.Fatalf("after prune: %v", got)
	}
	if n := len(fxRefIndex(h)); n != 0 {
		t.Fatalf("%d index entries left after every revision naming blocks was pruned", n)
	}
	fxCheckRefIndex(h, "after prune")

	// A restore names the restored revision's blocks again.
	h.must(alice, fxPut("/r", "eeee"))
	h.must(alice, fxPut("/r", "ffff"))
	h.must(alice, fxRestore("/r", 1))
	if got := fxRefIndex(h)[refKey{alice, fxSum("eeee")}]; got != 2 {
		t.Fatalf("count after restore: %d, want 2", got)
	}
	fxCheckRefIndex(h, "after restore")

	// Unknown and deleted namespaces are not found.
	if _, err := h.v().referenced(999, []Sum{fxSum("eeee")}); CodeOf(err) != CodeNotFound {
		t.Fatalf("unknown namespace: %v", err)
	}
	h.apply(&command{Type: cmdDeleteUser, DeleteUser: &userNameCmd{Name: "alice"}})
	if _, err := h.v().referenced(alice, []Sum{fxSum("eeee")}); CodeOf(err) != CodeNotFound {
		t.Fatalf("deleted namespace: %v", err)
	}
}

// TestRefIndexProperty applies random commits (put, delete, move, restore,
// mkdir, upload finishes) and prunes to two namespaces, and checks after
// every step that the index equals a recount from the revision records;
// at the end a rebuild from scratch gives the same keys.
func TestRefIndexProperty(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("COFFER_FSM_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		seed = v
	}
	t.Logf("seed %d (rerun with COFFER_FSM_SEED=%d)", seed, seed)
	rnd := rand.New(rand.NewPCG(seed, seed^0x5851f42d4c957f2d))
	h := fxNew(t)
	nss := []uint64{h.createUser("a", 0).Namespace, h.createUser("b", 0).Namespace}
	paths := []string{"/x", "/y", "/d/x", "/d/y", "/D", "/e/f"}
	chunks := []string{"aaaa", "bbbb", "cccc", "dddd", "eeee"}
	content := func() string {
		var s string
		for n := rnd.IntN(5); n > 0; n-- {
			s += chunks[rnd.IntN(len(chunks))]
		}
		return s
	}
	pick := func(ss []string) string { return ss[rnd.IntN(len(ss))] }
	outcomes := map[string]int{}
	uploads := 0
	for step := 0; step < 400; step++ {
		ns := nss[rnd.IntN(len(nss))]
		what := ""
		switch k := rnd.IntN(20); {
		case k == 0:
			h.now += int64(rnd.IntN(30)) * int64(time.Second)
			r, _ := h.pruneAll(time.Duration(rnd.IntN(20))*time.Second, rnd.IntN(3), 1+rnd.IntN(5))
			what = fmt.Sprintf("prune (%d revisions)", r.Revisions)
			outcomes["prune"]++
			outcomes["pruned revisions"] += r.Revisions
		case k == 1:
			// Finish an upload of random content.
			uploads++
			id := fmt.Sprintf("%032x", uploads)
			data := content()
			put := fxPut(pick(paths), data)
			if res := fxCreateUpload(h, "", ns, id, put.Path); res.Err != nil {
				t.Fatalf("step %d: create upload: %v", step, res.Err)
			}
			if res := fxAppendUpload(h, "", ns, id, 0, put.Blocks); res.Err != nil {
				t.Fatalf("step %d: append: %v", step, res.Err)
			}
			blocks := put.Blocks
			put.Blocks = nil
			res := h.apply(&command{Type: cmdCommit, Commit: &commitCmd{Namespace: ns, Ops: []Op{put}, Upload: id}})
			what = fmt.Sprintf("finish upload %s of %d blocks to %s", id, len(blocks), put.Path)
			outcomes[fmt.Sprintf("finish %s", fxOpCode(res.Err))]++
		default:
			var ops []Op
			for n := 1 + rnd.IntN(3); n > 0; n-- {
				p := pick(paths)
				switch k := rnd.IntN(10); {
				case k < 4:
					ops = append(ops, fxPut(p, content()))
				case k < 6:
					ops = append(ops, fxDel(p))
				case k < 7:
					ops = append(ops, fxMove(p, pick(paths)))
				case k < 8:
					ops = append(ops, fxMkdir(p))
				default:
					rev := uint64(1)
					if e, err := h.statAny(ns, p); err == nil {
						revs := h.historyID(ns, e.ID)
						rev = revs[rnd.IntN(len(revs))].Rev
					}
					ops = append(ops, fxRestore(p, rev))
				}
			}
			_, oe := h.commit(ns, ops...)
			what = fmt.Sprintf("commit %+v", ops)
			outcomes[fmt.Sprintf("commit %s", fxOpCode(oe))]++
		}
		fxCheckRefIndex(h, fmt.Sprintf("step %d (%s)", step, what))
	}
	t.Logf("outcomes: %v", outcomes)

	// A rebuild from the revisions writes exactly the maintained index.
	before := h.contentHash()
	if err := h.f.rebuildRefIndex(); err != nil {
		t.Fatal(err)
	}
	if h.contentHash() != before {
		t.Fatal("a rebuilt index differs from the maintained one")
	}
	// So does a replay of the whole log into a fresh FSM.
	twin := fxNew(t)
	twin.applyLogs(h.logs...)
	a, _ := h.stateHash()
	b, _ := twin.stateHash()
	if a != b {
		t.Fatal("a second FSM fed the same log has another state")
	}
}

// fxOpCode is the code of a refusal ("ok" for none).
func fxOpCode(oe *OpError) Code {
	if oe == nil {
		return "ok"
	}
	return oe.Code
}

// fxDropRefIndex deletes the index and its marker, as in a data dir
// written before the index existed.
func fxDropRefIndex(t *testing.T, db *pebble.DB, k keys) {
	t.Helper()
	lo, hi := k.TagBounds(tagRefs)
	if err := db.DeleteRange(lo, hi, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := db.Delete(k.refsVersion(), pebble.Sync); err != nil {
		t.Fatal(err)
	}
}

func TestRefIndexRebuiltOnOpen(t *testing.T) {
	h := fxNew(t)
	ns := h.createUser("alice", 0).Namespace
	other := h.createUser("bob", 0).Namespace
	h.must(ns, fxPut("/a", "aaaabbbbaaaa"), fxPut("/b", "cccc"))
	h.must(ns, fxPut("/a", "dddd"))
	h.must(other, fxPut("/x", "aaaaeeee"))
	want := h.contentHash()
	index := fxRefIndex(h)
	if len(index) == 0 {
		t.Fatal("no index to start with")
	}
	if v, ok, err := h.v().getU64(h.f.k.refsVersion()); err != nil || !ok || v != refIndexVersion {
		t.Fatalf("version marker %d, %v, %v", v, ok, err)
	}

	cases := []struct {
		name   string
		damage func()
	}{
		{"old data dir", func() { fxDropRefIndex(t, h.d.db, h.f.k) }},
		// A rebuild cut off midway left partial counts and no marker.
		{"interrupted rebuild", func() {
			fxDropRefIndex(t, h.d.db, h.f.k)
			if err := h.d.db.Set(h.f.k.ref(ns, fxSum("zzzz")), u64(7), pebble.Sync); err != nil {
				t.Fatal(err)
			}
			if err := h.d.db.Set(h.f.k.ref(ns, fxSum("aaaa")), u64(1), pebble.Sync); err != nil {
				t.Fatal(err)
			}
		}},
		{"older version", func() {
			if err := h.d.db.Set(h.f.k.refsVersion(), u64(refIndexVersion+1), pebble.Sync); err != nil {
				t.Fatal(err)
			}
			if err := h.d.db.Set(h.f.k.ref(ns, fxSum("zzzz")), u64(7), pebble.Sync); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			defer h.use(t)()
			tc.damage()
			if h.contentHash() == want {
				t.Fatal("the damage changed nothing")
			}
			h.d.reopen(t)
			h.f = h.openFSM()
			if h.contentHash() != want {
				t.Fatalf("after reopening: index %v, want %v", fxRefIndex(h), index)
			}
			fxCheckRefIndex(h, "after reopening")
		})
	}
	// Opening intact state rewrites nothing.
	h.f = h.openFSM()
	if h.contentHash() != want {
		t.Fatal("reopening intact state changed it")
	}
	// An empty group gets no keys at open; its first record brings the
	// marker.
	db := fxOpenDB(t)
	empty := fxNewWith(t, db, 5, 1000)
	if n := fxGroupKeys(t, db.db, 5); n != 0 {
		t.Fatalf("an empty group has %d keys after open", n)
	}
	empty.createUser("carol", 0)
	if v, ok, err := empty.v().getU64(empty.f.k.refsVersion()); err != nil || !ok || v != refIndexVersion {
		t.Fatalf("version marker of a new group: %d, %v, %v", v, ok, err)
	}
}

func TestRefIndexSnapshot(t *testing.T) {
	src := fxNew(t)
	ns := src.createUser("alice", 0).Namespace
	src.must(ns, fxPut("/a", "aaaabbbb"), fxPut("/b", "cccc"))
	src.must(ns, fxDel("/b"))
	probe := []string{"aaaa", "bbbb", "cccc", "dddd"}
	want := fxReferenced(src, ns, probe...)
	if fmt.Sprint(want) != "[true true true false]" {
		t.Fatalf("source: %v", want)
	}
	data := fxSnapshot(t, src)
	hash, _ := src.stateHash()

	dst := fxNew(t)
	if err := dst.f.Restore(io.NopCloser(bytes.NewReader(data))); err != nil {
		t.Fatal(err)
	}
	if got := fxReferenced(dst, ns, probe...); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("restored: %v, want %v", got, want)
	}
	if got, _ := dst.stateHash(); got != hash {
		t.Fatal("restored state differs")
	}

	// A snapshot of state written before the index existed restores with
	// the index rebuilt.
	old := fxNew(t)
	old.applyLogs(src.logs...)
	fxDropRefIndex(t, old.d.db, old.f.k)
	var buf bytes.Buffer
	if err := writeSnapshot(&buf, pebbleReader{old.d.db}, old.f.k); err != nil {
		t.Fatal(err)
	}
	dst2 := fxNew(t)
	if err := dst2.f.Restore(io.NopCloser(&buf)); err != nil {
		t.Fatal(err)
	}
	if got := fxReferenced(dst2, ns, probe...); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("restored from an old snapshot: %v, want %v", got, want)
	}
	if got, _ := dst2.stateHash(); got != hash {
		t.Fatal("the state restored from an old snapshot differs from the source's")
	}
	// And it carries on as the source does.
	src.must(ns, fxPut("/d", "dddd"))
	dst2.applyLogs(src.logs[len(src.logs)-1])
	a, _ := src.stateHash()
	b, _ := dst2.stateHash()
	if a != b {
		t.Fatal("replicas differ after the next entry")
	}
}

// TestRefIndexCorrupt checks that a prune that would take a count below
// zero refuses, rather than making the index worse.
func TestRefIndexCorrupt(t *testing.T) {
	h := fxNew(t)
	ns := h.createUser("alice", 0).Namespace
	h.must(ns, fxPut("/a", "aaaa"))
	h.must(ns, fxPut("/a", "bbbb"))
	if err := h.d.db.Delete(h.f.k.ref(ns, fxSum("aaaa")), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	h.now += int64(time.Hour)
	res := h.apply(&command{Type: cmdPrune, Prune: &pruneCmd{KeepFor: 1, KeepLast: 0, Max: 100}})
	fxWantCode(t, res.Err, CodeCorruptStore)
	if len(h.history(ns, "/a")) != 2 {
		t.Fatal("a refused prune deleted revisions")
	}
}
