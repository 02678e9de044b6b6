package raftmeta

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	"github.com/coffer-dev/coffer/raftmeta/metapath"
)

// Limits of resumable upload sessions.
const (
	// UploadTTL is how long an upload session lives after it is created;
	// appends do not extend it. Expired sessions read as absent and are
	// deleted by the prune pass.
	UploadTTL = 24 * time.Hour
	// MaxUploadsPerNamespace bounds the open (unexpired) upload sessions of
	// one namespace.
	MaxUploadsPerNamespace = 1000
	// MaxUploadStateBytes bounds an upload's State and its Meta, each.
	MaxUploadStateBytes = 4096
	// UploadIDLen is the length of an upload ID: lower-case hex digits.
	UploadIDLen = 32
)

// Upload is a resumable upload session: the blocks of a file received so
// far, kept by the shard so that any gateway can serve the next append and
// a gateway restart loses nothing. Finishing it is a commit that names it
// (CommitRequest.Upload).
type Upload struct {
	ID        string `json:"id"`      // 32 lower-case hex digits, chosen by the caller
	Namespace uint64 `json:"ns"`      // the namespace it belongs to
	Path      string `json:"path"`    // where finishing puts the file (cleaned, as a put's path)
	Created   int64  `json:"created"` // proposal time, Unix ns
	Expires   int64  `json:"expires"` // Created + UploadTTL
	Size      int64  `json:"size"`    // bytes received so far: the next append's offset
	Blocks    int    `json:"blocks"`  // number of blocks so far
	// State and Meta are opaque to the shard (the gateway's running hash
	// state, and its options for the finishing commit).
	State []byte `json:"state,omitempty"`
	Meta  []byte `json:"meta,omitempty"`
}

// checkUploadID validates an upload ID: exactly 32 lower-case hex digits.
func checkUploadID(id string) error {
	if len(id) != UploadIDLen {
		return fmt.Errorf("%w: an upload ID is %d hex digits, got %d bytes", ErrInvalidArgument, UploadIDLen, len(id))
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return fmt.Errorf("%w: upload ID has byte 0x%02x, want [0-9a-f]", ErrInvalidArgument, c)
		}
	}
	return nil
}

// checkUploadBlob validates an upload's State or Meta.
func checkUploadBlob(what string, b []byte) error {
	if len(b) > MaxUploadStateBytes {
		return fmt.Errorf("%w: upload %s is %d bytes, at most %d", ErrInvalidArgument, what, len(b), MaxUploadStateBytes)
	}
	return nil
}

// checkUploadBlocks validates the blocks of an append and returns their
// total size.
func checkUploadBlocks(blocks []Block) (int64, error) {
	if len(blocks) > MaxBlocksPerFile {
		return 0, fmt.Errorf("%w: %d blocks, at most %d", ErrInvalidArgument, len(blocks), MaxBlocksPerFile)
	}
	var sum int64
	for i, b := range blocks {
		if b.Size <= 0 || b.Ref.IsZero() {
			return 0, fmt.Errorf("%w: block %d has no ref or a size <= 0", ErrInvalidArgument, i)
		}
		if sum > maxUploadSize-b.Size {
			return 0, fmt.Errorf("%w: blocks add up to more than %d bytes", ErrInvalidArgument, int64(maxUploadSize))
		}
		sum += b.Size
	}
	return sum, nil
}

// maxUploadSize keeps sizes far from overflowing.
const maxUploadSize = 1 << 62

// encodeUpBlock encodes an upload block's value: the ref, then the size
// (8 bytes, big-endian).
func encodeUpBlock(b Block) []byte {
	out := make([]byte, 40)
	copy(out, b.Ref[:])
	binary.BigEndian.PutUint64(out[32:], uint64(b.Size))
	return out
}

func decodeUpBlock(v []byte) (Block, error) {
	if len(v) != 40 {
		return Block{}, fmt.Errorf("%w: upload block of %d bytes, want 40", ErrCorruptStore, len(v))
	}
	var b Block
	copy(b.Ref[:], v)
	b.Size = int64(binary.BigEndian.Uint64(v[32:]))
	return b, nil
}

func uploadNotFound(id string) *OpError {
	return opErr(CodeNotFound, "", fmt.Sprintf("no upload %s", id))
}

// upload loads upload id of namespace ns, or nil if there is none.
func (v *view) upload(ns uint64, id string) (*Upload, error) {
	u := new(Upload)
	ok, err := v.getJSON(v.k.upload(ns, id), u)
	if err != nil || !ok {
		return nil, err
	}
	return u, nil
}

// liveUpload loads upload id of namespace ns, or nil if there is none or
// it has expired at now (Unix ns).
func (v *view) liveUpload(ns uint64, id string, now int64) (*Upload, error) {
	u, err := v.upload(ns, id)
	if err != nil || u == nil || u.Expires <= now {
		return nil, err
	}
	return u, nil
}

// getUpload is the read behind Shard.GetUpload.
func (v *view) getUpload(ns uint64, id string, now int64) (*Upload, error) {
	if _, err := v.liveNamespace(ns); err != nil {
		return nil, err
	}
	u, err := v.liveUpload(ns, id, now)
	if err == nil && u == nil {
		err = uploadNotFound(id)
	}
	return u, err
}

// uploadBlocks returns the blocks of upload u in order.
func (v *view) uploadBlocks(u *Upload) ([]Block, error) {
	var blocks []Block
	if u.Blocks > 0 {
		blocks = make([]Block, 0, u.Blocks)
	}
	lo := v.k.upBlocks(u.Namespace, u.ID)
	err := v.scan(lo, prefixEnd(lo), false, func(k, val []byte) (bool, error) {
		if len(k) != len(lo)+8 || beU64(k[len(lo):]) != uint64(len(blocks)) {
			return false, fmt.Errorf("%w: upload %s: block key %q out of sequence", ErrCorruptStore, u.ID, k)
		}
		b, err := decodeUpBlock(val)
		if err != nil {
			return false, err
		}
		blocks = append(blocks, b)
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	if len(blocks) != u.Blocks {
		return nil, fmt.Errorf("%w: upload %s has %d blocks stored, its record says %d", ErrCorruptStore, u.ID, len(blocks), u.Blocks)
	}
	return blocks, nil
}

// dropUpload deletes an upload's record and blocks.
func (t *tx) dropUpload(ns uint64, id string) error {
	if err := t.del(t.k.upload(ns, id)); err != nil {
		return err
	}
	lo := t.k.upBlocks(ns, id)
	return t.delRange(lo, prefixEnd(lo))
}

// liveNamespaceTx returns the live namespace ns, or a not-found refusal.
func (t *tx) liveNamespaceTx(id uint64) (*Namespace, *OpError, error) {
	ns, err := t.namespace(id)
	if err != nil {
		return nil, nil, err
	}
	if ns == nil || ns.Deleted {
		return nil, opErr(CodeNotFound, "", fmt.Sprintf("no namespace %d", id)), nil
	}
	return ns, nil, nil
}

func refuse(code Code, err error) *result {
	return &result{Err: opErr(code, "", err.Error())}
}

// createUpload opens an upload session. An expired session of the same ID
// is replaced; a live one is ErrExists.
func (t *tx) createUpload(c *createUploadCmd) (*result, error) {
	for _, err := range []error{checkUploadID(c.ID), checkUploadBlob("state", c.State), checkUploadBlob("meta", c.Meta)} {
		if err != nil {
			return refuse(CodeInvalidArgument, err), nil
		}
	}
	if _, oe, err := t.liveNamespaceTx(c.Namespace); err != nil || oe != nil {
		return &result{Err: oe}, err
	}
	p, err := metapath.Clean(c.Path)
	if err != nil {
		return &result{Err: opErr(CodeInvalidPath, c.Path, err.Error())}, nil
	}
	if p == "/" {
		return &result{Err: opErr(CodeIsFolder, p, "an upload needs a file path")}, nil
	}
	old, err := t.upload(c.Namespace, c.ID)
	if err != nil {
		return nil, err
	}
	if old != nil && old.Expires > t.now {
		return &result{Err: opErr(CodeExists, "", fmt.Sprintf("upload %s exists", c.ID))}, nil
	}
	if old != nil {
		if err := t.dropUpload(c.Namespace, c.ID); err != nil {
			return nil, err
		}
	}
	open := 0
	lo := t.k.uploads(c.Namespace)
	err = t.scan(lo, prefixEnd(lo), false, func(_, val []byte) (bool, error) {
		var u struct {
			Expires int64 `json:"expires"`
		}
		if err := json.Unmarshal(val, &u); err != nil {
			return false, fmt.Errorf("%w: upload: %v", ErrCorruptStore, err)
		}
		if u.Expires > t.now {
			open++
		}
		return open < MaxUploadsPerNamespace, nil
	})
	if err != nil {
		return nil, err
	}
	if open >= MaxUploadsPerNamespace {
		return &result{Err: opErr(CodeTooMany, "", fmt.Sprintf("%d uploads are open in the namespace, at most %d", open, MaxUploadsPerNamespace))}, nil
	}
	u := &Upload{
		ID: c.ID, Namespace: c.Namespace, Path: p, Created: t.now, Expires: t.now + int64(UploadTTL),
		State: c.State, Meta: c.Meta,
	}
	if err := t.putJSON(t.k.upload(u.Namespace, u.ID), u); err != nil {
		return nil, err
	}
	return &result{Upload: u}, nil
}

// appendUpload adds blocks to an upload at offset, which must be its size
// so far. No blocks is allowed: it replaces the state only.
func (t *tx) appendUpload(c *appendUploadCmd) (*result, error) {
	if err := checkUploadID(c.ID); err != nil {
		return refuse(CodeInvalidArgument, err), nil
	}
	if err := checkUploadBlob("state", c.State); err != nil {
		return refuse(CodeInvalidArgument, err), nil
	}
	add, err := checkUploadBlocks(c.Blocks)
	if err != nil {
		return refuse(CodeInvalidArgument, err), nil
	}
	ns, oe, err := t.liveNamespaceTx(c.Namespace)
	if err != nil || oe != nil {
		return &result{Err: oe}, err
	}
	u, err := t.liveUpload(c.Namespace, c.ID, t.now)
	if err != nil {
		return nil, err
	}
	if u == nil {
		return &result{Err: uploadNotFound(c.ID)}, nil
	}
	if c.Offset != u.Size {
		return &result{Err: &OpError{Code: CodeOffsetMismatch, Op: -1, Offset: u.Size,
			Message: fmt.Sprintf("append at offset %d", c.Offset)}}, nil
	}
	if u.Blocks+len(c.Blocks) > MaxBlocksPerFile {
		return &result{Err: opErr(CodeInvalidArgument, "", fmt.Sprintf("the upload would have %d blocks, at most %d", u.Blocks+len(c.Blocks), MaxBlocksPerFile))}, nil
	}
	if u.Size > maxUploadSize-add {
		return &result{Err: opErr(CodeInvalidArgument, "", "the upload would be too large")}, nil
	}
	// An upload larger than the owner's whole quota can never be committed.
	owner, err := t.user(ns.Owner)
	if err != nil {
		return nil, err
	}
	if owner != nil && owner.Quota > 0 && u.Size+add > owner.Quota {
		return &result{Err: opErr(CodeQuota, "", fmt.Sprintf("the upload would be %d bytes, the quota is %d", u.Size+add, owner.Quota))}, nil
	}
	for i, b := range c.Blocks {
		if err := t.b.Set(t.k.upBlock(u.Namespace, u.ID, uint64(u.Blocks+i)), encodeUpBlock(b), nil); err != nil {
			return nil, fmt.Errorf("%w: set: %v", errStore, err)
		}
	}
	u.Size += add
	u.Blocks += len(c.Blocks)
	if len(c.State) > 0 {
		u.State = c.State
	}
	if err := t.putJSON(t.k.upload(u.Namespace, u.ID), u); err != nil {
		return nil, err
	}
	return &result{Upload: u}, nil
}

// deleteUpload deletes a live upload and its blocks.
func (t *tx) deleteUpload(c *uploadCmd) (*result, error) {
	if err := checkUploadID(c.ID); err != nil {
		return refuse(CodeInvalidArgument, err), nil
	}
	u, err := t.liveUpload(c.Namespace, c.ID, t.now)
	if err != nil {
		return nil, err
	}
	if u == nil {
		return &result{Err: uploadNotFound(c.ID)}, nil
	}
	return &result{}, t.dropUpload(c.Namespace, c.ID)
}

// finishUpload prepares a commit that finishes upload c.Upload: the batch
// must be one put op with no blocks and the upload's size; the op gets the
// upload's blocks, in order, and the upload is deleted (in the commit's
// batch, so a refused commit keeps it).
func (t *tx) finishUpload(ns uint64, c *commitCmd) (*OpError, error) {
	if err := checkUploadID(c.Upload); err != nil {
		return opErr(CodeInvalidArgument, "", err.Error()), nil
	}
	if len(c.Ops) != 1 || c.Ops[0].Kind != OpPut {
		return opErr(CodeInvalidArgument, "", "a commit that finishes an upload is one put op"), nil
	}
	u, err := t.liveUpload(ns, c.Upload, t.now)
	if err != nil {
		return nil, err
	}
	if u == nil {
		return uploadNotFound(c.Upload), nil
	}
	op := &c.Ops[0]
	if len(op.Blocks) > 0 {
		return &OpError{Code: CodeInvalidArgument, Op: 0, Kind: op.Kind, Path: op.Path, Message: "the put op of a commit that finishes an upload names no blocks: they are the upload's"}, nil
	}
	if op.Size != u.Size {
		return &OpError{Code: CodeOffsetMismatch, Op: 0, Kind: op.Kind, Path: op.Path, Offset: u.Size,
			Message: fmt.Sprintf("the put op has size %d, the upload %d", op.Size, u.Size)}, nil
	}
	if op.Blocks, err = t.uploadBlocks(u); err != nil {
		return nil, err
	}
	return nil, t.dropUpload(ns, u.ID)
}

// pruneUploads deletes expired upload sessions (expiry at or before now)
// and their blocks, visiting at most max-*visited records from the key
// suffix from on. It returns the cursor to resume at (nil when it reached
// the end) and how many it deleted.
func (t *tx) pruneUploads(from []byte, now int64, max int, visited *int) (next []byte, deleted int, err error) {
	base := t.k.Key(tagUpload)
	type up struct {
		ns uint64
		id string
	}
	var expired []up
	err = t.scan(append(append([]byte(nil), base...), from...), prefixEnd(base), false, func(k, v []byte) (bool, error) {
		if *visited >= max {
			next = append([]byte{tagUpload}, k[len(base):]...)
			return false, nil
		}
		*visited++
		if len(k) != len(base)+8+UploadIDLen {
			return false, fmt.Errorf("%w: upload key %q", ErrCorruptStore, k)
		}
		var u struct {
			Expires int64 `json:"expires"`
		}
		if err := json.Unmarshal(v, &u); err != nil {
			return false, fmt.Errorf("%w: upload: %v", ErrCorruptStore, err)
		}
		if u.Expires <= now {
			expired = append(expired, up{beU64(k[len(base):]), string(k[len(base)+8:])})
		}
		return true, nil
	})
	if err != nil {
		return nil, 0, err
	}
	for _, u := range expired {
		if err := t.dropUpload(u.ns, u.id); err != nil {
			return nil, 0, err
		}
	}
	return next, len(expired), nil
}
