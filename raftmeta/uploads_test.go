package raftmeta

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// Tests of resumable upload sessions in the state machine.

func fxCreateUploadWith(h *fxHarness, rid string, c createUploadCmd) *result {
	h.t.Helper()
	return h.apply(&command{Type: cmdCreateUpload, RequestID: rid, CreateUpload: &c})
}

func fxCreateUpload(h *fxHarness, rid string, ns uint64, id, path string) *result {
	h.t.Helper()
	return fxCreateUploadWith(h, rid, createUploadCmd{Namespace: ns, ID: id, Path: path, State: []byte("s0"), Meta: []byte("m")})
}

func fxAppendUpload(h *fxHarness, rid string, ns uint64, id string, offset int64, blocks []Block) *result {
	h.t.Helper()
	return h.apply(&command{Type: cmdAppendUpload, RequestID: rid, AppendUpload: &appendUploadCmd{
		Namespace: ns, ID: id, Offset: offset, Blocks: blocks, State: []byte(fmt.Sprintf("s%d", offset)),
	}})
}

func fxDeleteUpload(h *fxHarness, rid string, ns uint64, id string) *result {
	h.t.Helper()
	return h.apply(&command{Type: cmdDeleteUpload, RequestID: rid, DeleteUpload: &uploadCmd{Namespace: ns, ID: id}})
}

// fxFinish commits a put of size bytes at path that finishes upload id.
func fxFinish(h *fxHarness, rid string, ns uint64, id, path string, size int64, hash Sum) *result {
	h.t.Helper()
	return h.apply(&command{Type: cmdCommit, RequestID: rid, Commit: &commitCmd{Namespace: ns, Upload: id,
		Ops: []Op{{Kind: OpPut, Path: path, Size: size, Hash: hash, Mode: 0o644}}}})
}

// fxBlocks splits data into blocks of at most 4 bytes, as fxPut does.
func fxBlocks(data string) []Block { return fxPut("/", data).Blocks }

// fxGetUpload reads an upload at the harness's clock.
func fxGetUpload(h *fxHarness, ns uint64, id string) (*Upload, error) {
	return h.v().getUpload(ns, id, h.now)
}

// fxTagKeys counts the group's keys with tag.
func fxTagKeys(h *fxHarness, tag byte) int {
	h.t.Helper()
	lo, hi := h.f.k.TagBounds(tag)
	n := 0
	if err := h.v().scan(lo, hi, false, func(_, _ []byte) (bool, error) { n++; return true, nil }); err != nil {
		h.t.Fatal(err)
	}
	return n
}

const (
	fxUp1 = "0123456789abcdef0123456789abcdef"
	fxUp2 = "fedcba9876543210fedcba9876543210"
)

func TestUploadLifecycle(t *testing.T) {
	h := fxNew(t)
	ns := h.createUser("alice", 0).Namespace

	created := h.now
	res := fxCreateUpload(h, "c1", ns, fxUp1, "docs/Report.txt/")
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	want := Upload{ID: fxUp1, Namespace: ns, Path: "/docs/Report.txt", Created: created, Expires: created + int64(UploadTTL),
		State: []byte("s0"), Meta: []byte("m")}
	if !reflect.DeepEqual(*res.Upload, want) {
		t.Fatalf("created %+v, want %+v", *res.Upload, want)
	}
	if got, err := fxGetUpload(h, ns, fxUp1); err != nil || !reflect.DeepEqual(*got, want) {
		t.Fatalf("get = %+v, %v", got, err)
	}

	data := "aaaabbbbccccdddde"
	all := fxBlocks(data)
	// Appends at the right offsets.
	res = fxAppendUpload(h, "a1", ns, fxUp1, 0, all[:2])
	if res.Err != nil || res.Upload.Size != 8 || res.Upload.Blocks != 2 || string(res.Upload.State) != "s0" {
		t.Fatalf("append 1: %+v, %v", res.Upload, res.Err)
	}
	// A wrong offset is refused with the right one.
	for _, off := range []int64{0, 4, 9, 100} {
		res = fxAppendUpload(h, "", ns, fxUp1, off, all[2:3])
		fxWantCode(t, res.Err, CodeOffsetMismatch)
		if res.Err.Offset != 8 || !strings.Contains(res.Err.Error(), "offset 8") {
			t.Fatalf("offset %d: %+v", off, res.Err)
		}
	}
	// Zero blocks at the right offset replace the state only.
	res = fxAppendUpload(h, "", ns, fxUp1, 8, nil)
	if res.Err != nil || res.Upload.Size != 8 || res.Upload.Blocks != 2 || string(res.Upload.State) != "s8" {
		t.Fatalf("empty append: %+v, %v", res.Upload, res.Err)
	}
	res = fxAppendUpload(h, "a2", ns, fxUp1, 8, all[2:])
	if res.Err != nil || res.Upload.Size != int64(len(data)) || res.Upload.Blocks != len(all) {
		t.Fatalf("append 2: %+v, %v", res.Upload, res.Err)
	}
	if string(res.Upload.Meta) != "m" || res.Upload.Expires != want.Expires || res.Upload.Path != want.Path {
		t.Fatalf("append changed more than size, blocks and state: %+v", res.Upload)
	}
	// Its blocks are live for the GC, and not (yet) referenced content.
	live := map[Sum]bool{}
	if _, err := h.f.LiveBlocks(context.Background(), func(b Block) error { live[b.Ref] = true; return nil }); err != nil {
		t.Fatal(err)
	}
	for _, b := range all {
		if !live[b.Ref] {
			t.Fatalf("block %x of an open upload is not live", b.Ref[:6])
		}
	}
	if got := fxReferenced(h, ns, "aaaa"); got[0] {
		t.Fatal("an open upload's block counts as referenced")
	}

	// Finishing it commits the file with the upload's blocks, in order,
	// and deletes the upload in the same entry.
	res = fxFinish(h, "f1", ns, fxUp1, "/docs/report.TXT", int64(len(data)), fxSum(data))
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	e := h.mustStat(ns, "/docs/report.txt")
	if !reflect.DeepEqual(e.Blocks, all) || e.Size != int64(len(data)) || e.Hash != fxSum(data) || e.Rev != 1 {
		t.Fatalf("finished file %+v, want blocks %+v", e, all)
	}
	if rec := h.lastRecord(ns); len(rec.Changes) != 2 || rec.Changes[1].Path != "/docs/report.TXT" || rec.RequestID != "f1" {
		t.Fatalf("journal record %+v", rec)
	}
	if _, err := fxGetUpload(h, ns, fxUp1); CodeOf(err) != CodeNotFound {
		t.Fatalf("get after finish: %v", err)
	}
	if n := fxTagKeys(h, tagUpload) + fxTagKeys(h, tagUpBlock); n != 0 {
		t.Fatalf("%d upload keys left after finishing", n)
	}
	if got := fxReferenced(h, ns, "aaaa", "e"); fmt.Sprint(got) != "[true true]" {
		t.Fatalf("finished file's blocks referenced: %v", got)
	}
	fxCheckRefIndex(h, "after finish")
	// A retry of the finish returns the first result and changes nothing.
	hash := h.contentHash()
	if again := fxFinish(h, "f1", ns, fxUp1, "/docs/report.TXT", int64(len(data)), fxSum(data)); again.Err != nil || !reflect.DeepEqual(again.Commit, res.Commit) {
		t.Fatalf("retried finish: %+v", again)
	}
	if h.contentHash() != hash {
		t.Fatal("a retried finish changed the state")
	}
	// Finishing it again under a new request ID: it is gone.
	fxWantCode(t, fxFinish(h, "f2", ns, fxUp1, "/x", int64(len(data)), fxSum(data)).Err, CodeNotFound)

	// An empty upload finishes as an empty file.
	if res := fxCreateUpload(h, "", ns, fxUp2, "/empty"); res.Err != nil {
		t.Fatal(res.Err)
	}
	if res := fxFinish(h, "", ns, fxUp2, "/empty", 0, fxSum("")); res.Err != nil {
		t.Fatal(res.Err)
	}
	if e := h.mustStat(ns, "/empty"); e.Size != 0 || len(e.Blocks) != 0 {
		t.Fatalf("empty file %+v", e)
	}

	// Delete.
	if res := fxCreateUpload(h, "", ns, fxUp1, "/again"); res.Err != nil {
		t.Fatal(res.Err)
	}
	fxAppendUpload(h, "", ns, fxUp1, 0, all)
	if res := fxDeleteUpload(h, "d1", ns, fxUp1); res.Err != nil {
		t.Fatal(res.Err)
	}
	if n := fxTagKeys(h, tagUpload) + fxTagKeys(h, tagUpBlock); n != 0 {
		t.Fatalf("%d upload keys left after delete", n)
	}
	fxWantCode(t, fxDeleteUpload(h, "d2", ns, fxUp1).Err, CodeNotFound)
	// The retry of the first delete still succeeds.
	if res := fxDeleteUpload(h, "d1", ns, fxUp1); res.Err != nil {
		t.Fatalf("retried delete: %v", res.Err)
	}
}

func TestUploadFinishRefusals(t *testing.T) {
	h := fxNew(t)
	ns := h.createUser("alice", 0).Namespace
	bob := h.createUser("bob", 0).Namespace
	h.must(ns, fxPut("/taken", "zzzz"))
	data := "aaaabbbbcc"
	fxCreateUpload(h, "", ns, fxUp1, "/f")
	fxAppendUpload(h, "", ns, fxUp1, 0, fxBlocks(data))
	size, sum := int64(len(data)), fxSum(data)
	put := Op{Kind: OpPut, Path: "/f", Size: size, Hash: sum}

	withOps := func(ops ...Op) *command {
		return &command{Type: cmdCommit, Commit: &commitCmd{Namespace: ns, Upload: fxUp1, Ops: ops}}
	}
	withBlocks := put
	withBlocks.Blocks = fxBlocks(data)
	short := put
	short.Size = 4
	noneMatch := put
	noneMatch.Path, noneMatch.IfNoneMatch = "/taken", true
	cases := []struct {
		name   string
		c      *command
		code   Code
		offset int64
	}{
		{"wrong size", withOps(short), CodeOffsetMismatch, size},
		{"op names blocks", withOps(withBlocks), CodeInvalidArgument, 0},
		{"two ops", withOps(fxMkdir("/d"), put), CodeInvalidArgument, 0},
		{"not a put", withOps(fxMkdir("/d")), CodeInvalidArgument, 0},
		{"bad upload ID", &command{Type: cmdCommit, Commit: &commitCmd{Namespace: ns, Upload: "XYZ", Ops: []Op{put}}}, CodeInvalidArgument, 0},
		{"unknown upload", &command{Type: cmdCommit, Commit: &commitCmd{Namespace: ns, Upload: fxUp2, Ops: []Op{put}}}, CodeNotFound, 0},
		{"other namespace", &command{Type: cmdCommit, Commit: &commitCmd{Namespace: bob, Upload: fxUp1, Ops: []Op{put}}}, CodeNotFound, 0},
		{"conflict", withOps(noneMatch), CodeConflict, 0},
		{"folder in the way", withOps(Op{Kind: OpPut, Path: "/taken/x", Size: size, Hash: sum}), CodeNotFolder, 0},
		{"no hash", withOps(Op{Kind: OpPut, Path: "/f", Size: size}), CodeInvalidArgument, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			defer h.use(t)()
			hash := h.contentHash()
			res := h.apply(tc.c)
			fxWantCode(t, res.Err, tc.code)
			if res.Err.Offset != tc.offset {
				t.Errorf("offset %d, want %d", res.Err.Offset, tc.offset)
			}
			// The upload stays, untouched.
			if h.contentHash() != hash {
				t.Fatal("a refused finish changed the state")
			}
			if u, err := fxGetUpload(h, ns, fxUp1); err != nil || u.Size != size {
				t.Fatalf("upload after a refused finish: %+v, %v", u, err)
			}
		})
	}
	// After the conflict, a finish that passes works.
	if res := fxFinish(h, "", ns, fxUp1, "/f", size, sum); res.Err != nil {
		t.Fatal(res.Err)
	}
	if e := h.mustStat(ns, "/f"); !reflect.DeepEqual(e.Blocks, fxBlocks(data)) {
		t.Fatalf("file %+v", e)
	}
	// Quota: the finish is refused and the upload kept.
	h.apply(&command{Type: cmdSetQuota, SetQuota: &setQuotaCmd{Name: "alice", Quota: int64(len(data)) + 6}})
	fxCreateUpload(h, "", ns, fxUp2, "/g")
	fxAppendUpload(h, "", ns, fxUp2, 0, fxBlocks("qqqqqqqq"))
	fxWantCode(t, fxFinish(h, "", ns, fxUp2, "/g", 8, fxSum("qqqqqqqq")).Err, CodeQuota)
	if _, err := fxGetUpload(h, ns, fxUp2); err != nil {
		t.Fatalf("upload after a refused finish: %v", err)
	}
}

func TestUploadRefusals(t *testing.T) {
	h := fxNew(t)
	ns := h.createUser("alice", 40).Namespace
	bob := h.createUser("bob", 0).Namespace
	if res := fxCreateUpload(h, "", ns, fxUp1, "/f"); res.Err != nil {
		t.Fatal(res.Err)
	}
	big := bytes.Repeat([]byte("x"), MaxUploadStateBytes+1)
	max := bytes.Repeat([]byte("x"), MaxUploadStateBytes)
	create := func(c createUploadCmd) *command { return &command{Type: cmdCreateUpload, CreateUpload: &c} }
	appendCmd := func(c appendUploadCmd) *command { return &command{Type: cmdAppendUpload, AppendUpload: &c} }
	cases := []struct {
		name string
		c    *command
		code Code
	}{
		{"create: exists", create(createUploadCmd{Namespace: ns, ID: fxUp1, Path: "/g"}), CodeExists},
		{"create: short ID", create(createUploadCmd{Namespace: ns, ID: "abc", Path: "/g"}), CodeInvalidArgument},
		{"create: upper-case ID", create(createUploadCmd{Namespace: ns, ID: strings.ToUpper(fxUp2), Path: "/g"}), CodeInvalidArgument},
		{"create: state too big", create(createUploadCmd{Namespace: ns, ID: fxUp2, Path: "/g", State: big}), CodeInvalidArgument},
		{"create: meta too big", create(createUploadCmd{Namespace: ns, ID: fxUp2, Path: "/g", Meta: big}), CodeInvalidArgument},
		{"create: bad path", create(createUploadCmd{Namespace: ns, ID: fxUp2, Path: "/a/../b"}), CodeInvalidPath},
		{"create: root", create(createUploadCmd{Namespace: ns, ID: fxUp2, Path: "/"}), CodeIsFolder},
		{"create: unknown namespace", create(createUploadCmd{Namespace: 999, ID: fxUp2, Path: "/g"}), CodeNotFound},
		{"append: other namespace", appendCmd(appendUploadCmd{Namespace: bob, ID: fxUp1, Blocks: fxBlocks("aaaa")}), CodeNotFound},
		{"append: unknown", appendCmd(appendUploadCmd{Namespace: ns, ID: fxUp2, Blocks: fxBlocks("aaaa")}), CodeNotFound},
		{"append: bad ID", appendCmd(appendUploadCmd{Namespace: ns, ID: "", Blocks: fxBlocks("aaaa")}), CodeInvalidArgument},
		{"append: state too big", appendCmd(appendUploadCmd{Namespace: ns, ID: fxUp1, State: big}), CodeInvalidArgument},
		{"append: empty block", appendCmd(appendUploadCmd{Namespace: ns, ID: fxUp1, Blocks: []Block{{Ref: fxSum("a")}}}), CodeInvalidArgument},
		{"append: no ref", appendCmd(appendUploadCmd{Namespace: ns, ID: fxUp1, Blocks: []Block{{Size: 3}}}), CodeInvalidArgument},
		{"append: over the quota", appendCmd(appendUploadCmd{Namespace: ns, ID: fxUp1, Blocks: fxBlocks(strings.Repeat("a", 41))}), CodeQuota},
		{"append: overflow", appendCmd(appendUploadCmd{Namespace: ns, ID: fxUp1, Blocks: []Block{{Ref: fxSum("a"), Size: 1 << 62}, {Ref: fxSum("b"), Size: 1 << 62}}}), CodeInvalidArgument},
		{"delete: other namespace", &command{Type: cmdDeleteUpload, DeleteUpload: &uploadCmd{Namespace: bob, ID: fxUp1}}, CodeNotFound},
		{"delete: bad ID", &command{Type: cmdDeleteUpload, DeleteUpload: &uploadCmd{Namespace: ns, ID: fxUp1 + "0"}}, CodeInvalidArgument},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			defer h.use(t)()
			hash := h.contentHash()
			fxWantCode(t, h.apply(tc.c).Err, tc.code)
			if h.contentHash() != hash {
				t.Fatal("a refused command changed the state")
			}
		})
	}
	// The limits themselves are fine.
	if res := fxCreateUploadWith(h, "", createUploadCmd{Namespace: ns, ID: fxUp2, Path: "/g", State: max, Meta: max}); res.Err != nil {
		t.Fatal(res.Err)
	}
	if res := fxAppendUpload(h, "", ns, fxUp2, 0, fxBlocks(strings.Repeat("a", 40))); res.Err != nil {
		t.Fatal(res.Err)
	}
	if _, err := fxGetUpload(h, bob, fxUp2); CodeOf(err) != CodeNotFound {
		t.Fatalf("get from another namespace: %v", err)
	}

	// An upload reaches MaxBlocksPerFile blocks at most.
	u, err := fxGetUpload(h, ns, fxUp1)
	if err != nil {
		t.Fatal(err)
	}
	u.Blocks = MaxBlocksPerFile - 1 // as if appended (the count is all the check reads)
	if err := h.d.db.Set(h.f.k.upload(ns, fxUp1), fxJSON(t, u), nil); err != nil {
		t.Fatal(err)
	}
	fxWantCode(t, fxAppendUpload(h, "", ns, fxUp1, 0, fxBlocks("aaaabbbb")).Err, CodeInvalidArgument)
	if res := fxAppendUpload(h, "", ns, fxUp1, 0, fxBlocks("aaaa")); res.Err != nil || res.Upload.Blocks != MaxBlocksPerFile {
		t.Fatalf("append of the last block: %+v", res)
	}

	// A deleted user's uploads are gone with the namespace.
	h.apply(&command{Type: cmdDeleteUser, DeleteUser: &userNameCmd{Name: "alice"}})
	if _, err := fxGetUpload(h, ns, fxUp2); CodeOf(err) != CodeNotFound {
		t.Fatalf("get in a deleted namespace: %v", err)
	}
	fxWantCode(t, fxAppendUpload(h, "", ns, fxUp2, 40, nil).Err, CodeNotFound)
}

func TestUploadTooMany(t *testing.T) {
	h := fxNew(t)
	ns := h.createUser("alice", 0).Namespace
	bob := h.createUser("bob", 0).Namespace
	first := h.now // the first upload's proposal time
	// The first few through commands, the bulk written as a command would
	// write them (a command each is slow under the race detector).
	const direct = MaxUploadsPerNamespace - 10
	for i := 0; i < MaxUploadsPerNamespace; i++ {
		id := fmt.Sprintf("%032x", i)
		if i < 5 || i >= direct {
			if res := fxCreateUpload(h, "", ns, id, "/f"); res.Err != nil {
				t.Fatalf("upload %d: %v", i, res.Err)
			}
			continue
		}
		u := Upload{ID: id, Namespace: ns, Path: "/f", Created: h.now, Expires: h.now + int64(UploadTTL)}
		h.now += h.step
		if err := h.d.db.Set(h.f.k.upload(ns, id), fxJSON(t, u), nil); err != nil {
			t.Fatal(err)
		}
	}
	fxWantCode(t, fxCreateUpload(h, "", ns, fxUp1, "/f").Err, CodeTooMany)
	// Other namespaces have their own limit.
	if res := fxCreateUpload(h, "", bob, fxUp1, "/f"); res.Err != nil {
		t.Fatal(res.Err)
	}
	// A finished or deleted upload makes room; so does an expired one.
	if res := fxDeleteUpload(h, "", ns, fmt.Sprintf("%032x", 5)); res.Err != nil {
		t.Fatal(res.Err)
	}
	if res := fxCreateUpload(h, "", ns, fxUp1, "/f"); res.Err != nil {
		t.Fatal(res.Err)
	}
	fxWantCode(t, fxCreateUpload(h, "", ns, fxUp2, "/f").Err, CodeTooMany)
	// At the first upload's expiry (only that one's: the clock stands
	// still from here) there is room for one more.
	h.now, h.step = first+int64(UploadTTL), 0
	if res := fxCreateUpload(h, "", ns, fxUp2, "/f"); res.Err != nil {
		t.Fatalf("after the first expired: %v", res.Err)
	}
	fxWantCode(t, fxCreateUpload(h, "", ns, "ffffffffffffffffffffffffffffffff", "/f").Err, CodeTooMany)
}

func TestUploadExpiry(t *testing.T) {
	h := fxNew(t)
	ns := h.createUser("alice", 0).Namespace
	created := h.now
	fxCreateUpload(h, "", ns, fxUp1, "/f")
	fxAppendUpload(h, "", ns, fxUp1, 0, fxBlocks("aaaabbbb"))
	expires := created + int64(UploadTTL)

	// Just before its expiry it is there; at it, it is gone for reads and
	// commands alike.
	if _, err := h.v().getUpload(ns, fxUp1, expires-1); err != nil {
		t.Fatal(err)
	}
	if _, err := h.v().getUpload(ns, fxUp1, expires); CodeOf(err) != CodeNotFound {
		t.Fatalf("get at expiry: %v", err)
	}
	h.now = expires - 1
	if res := fxAppendUpload(h, "", ns, fxUp1, 8, fxBlocks("cccc")); res.Err != nil {
		t.Fatalf("append just before expiry: %v", res.Err)
	}
	h.now = expires
	fxWantCode(t, fxAppendUpload(h, "", ns, fxUp1, 12, nil).Err, CodeNotFound)
	fxWantCode(t, fxFinish(h, "", ns, fxUp1, "/f", 12, fxSum("aaaabbbbcccc")).Err, CodeNotFound)
	fxWantCode(t, fxDeleteUpload(h, "", ns, fxUp1).Err, CodeNotFound)
	// Still stored (and its blocks live for the GC) until prune deletes it.
	if fxTagKeys(h, tagUpBlock) != 3 {
		t.Fatal("an expired upload's blocks went before the prune")
	}

	// The same ID may be used again: it starts afresh.
	res := fxCreateUpload(h, "", ns, fxUp1, "/g")
	if res.Err != nil || res.Upload.Size != 0 || res.Upload.Blocks != 0 || res.Upload.Path != "/g" {
		t.Fatalf("re-created %+v, %v", res.Upload, res.Err)
	}
	if n := fxTagKeys(h, tagUpBlock); n != 0 {
		t.Fatalf("%d blocks of the expired upload kept", n)
	}
	fxAppendUpload(h, "", ns, fxUp1, 0, fxBlocks("dddd"))

	// Prune deletes expired uploads with their blocks, a few per step, and
	// leaves live ones.
	ids := []string{fxUp2, "11111111111111111111111111111111", "22222222222222222222222222222222", "33333333333333333333333333333333"}
	for _, id := range ids {
		fxCreateUpload(h, "", ns, id, "/x")
		fxAppendUpload(h, "", ns, id, 0, fxBlocks("eeeeffff"))
	}
	h.now += int64(UploadTTL)
	fxCreateUpload(h, "", ns, "44444444444444444444444444444444", "/live")
	total, steps := h.pruneAll(time.Hour, 1, 2)
	if total.Uploads != 5 || steps < 3 {
		t.Fatalf("prune deleted %d uploads in %d steps, want 5 in several", total.Uploads, steps)
	}
	if n, b := fxTagKeys(h, tagUpload), fxTagKeys(h, tagUpBlock); n != 1 || b != 0 {
		t.Fatalf("after prune: %d uploads, %d blocks; want the live one", n, b)
	}
	if again, _ := h.pruneAll(time.Hour, 1, 2); again.Uploads != 0 {
		t.Fatalf("a second prune deleted %d uploads", again.Uploads)
	}
}

func TestUploadDedup(t *testing.T) {
	h := fxNew(t)
	ns := h.createUser("alice", 0).Namespace
	bob := h.createUser("bob", 0).Namespace
	first := fxCreateUpload(h, "c", ns, fxUp1, "/f")
	// A retry returns the first result, not ErrExists.
	if again := fxCreateUpload(h, "c", ns, fxUp1, "/f"); !reflect.DeepEqual(again, first) {
		t.Fatalf("retried create %+v, want %+v", again, first)
	}
	a1 := fxAppendUpload(h, "a", ns, fxUp1, 0, fxBlocks("aaaabbbb"))
	if a1.Err != nil {
		t.Fatal(a1.Err)
	}
	hash := h.contentHash()
	// The retry of an append gets its first result (not an offset
	// mismatch) and appends nothing.
	if again := fxAppendUpload(h, "a", ns, fxUp1, 0, fxBlocks("aaaabbbb")); !reflect.DeepEqual(again, a1) {
		t.Fatalf("retried append %+v, want %+v", again.Upload, a1.Upload)
	}
	if h.contentHash() != hash {
		t.Fatal("a retried append changed the state")
	}
	// Request IDs are scoped by namespace: bob's "a" is his own.
	if res := fxCreateUpload(h, "a", bob, fxUp1, "/f"); res.Err != nil || res.Upload.Namespace != bob {
		t.Fatalf("bob's create with alice's request ID: %+v", res)
	}
	// A refusal is remembered too.
	r1 := fxAppendUpload(h, "bad", ns, fxUp1, 3, nil)
	fxWantCode(t, r1.Err, CodeOffsetMismatch)
	fxAppendUpload(h, "", ns, fxUp1, 8, fxBlocks("cccc"))
	if again := fxAppendUpload(h, "bad", ns, fxUp1, 12, nil); !reflect.DeepEqual(again, r1) {
		t.Fatalf("retried refusal %+v, want %+v", again.Err, r1.Err)
	}
}

func fxJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
