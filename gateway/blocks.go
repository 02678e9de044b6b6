package gateway

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/coffer-dev/coffer/blockstore"
	"github.com/coffer-dev/coffer/gateway/auth"
	"github.com/coffer-dev/coffer/internal/wire"
	"github.com/coffer-dev/coffer/raftmeta"
)

// Block receipts. A commit may name a block its namespace does not
// reference yet only with a receipt for it: proof that this user uploaded
// the bytes (PUT /v1/blocks/{ref}) and that W block nodes stored them.
// Without it, a user who knew a block's hash could name someone else's
// content in a commit and then read it. A receipt is
//
//	"r1." + base64url(ns 8 bytes | ref 32 bytes | size 8 | expires 8 | HMAC-SHA256 16 bytes)
//
// where the MAC also covers the shard (namespace IDs repeat across shards).
//
// keyed by a key derived from the cluster's signing key, so any gateway
// checks it without state.

const receiptVersion = "r1."

func receiptKey(signingKey []byte) []byte {
	m := hmac.New(sha256.New, signingKey)
	m.Write([]byte("coffer block receipt v1"))
	return m.Sum(nil)
}

func receiptMAC(key []byte, shard uint64, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(binary.BigEndian.AppendUint64(nil, shard))
	m.Write(body)
	return m.Sum(nil)[:16]
}

// makeReceipt signs a receipt for ref in namespace ns of shard.
func makeReceipt(key []byte, shard, ns uint64, ref blockstore.Ref, size int64, expires time.Time) string {
	b := make([]byte, 0, 56+16)
	b = binary.BigEndian.AppendUint64(b, ns)
	b = append(b, ref[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(size))
	b = binary.BigEndian.AppendUint64(b, uint64(expires.Unix()))
	b = append(b, receiptMAC(key, shard, b)...)
	return receiptVersion + base64.RawURLEncoding.EncodeToString(b)
}

// checkReceipt returns the ref and size a receipt vouches for in
// namespace ns of shard.
func checkReceipt(key []byte, shard, ns uint64, rc string, now time.Time) (raftmeta.Sum, int64, error) {
	bad := func(why string) (raftmeta.Sum, int64, error) {
		return raftmeta.Sum{}, 0, fmt.Errorf("%w: receipt %.24q…: %s", raftmeta.ErrInvalidArgument, rc, why)
	}
	if !strings.HasPrefix(rc, receiptVersion) {
		return bad("unknown version")
	}
	b, err := base64.RawURLEncoding.DecodeString(rc[len(receiptVersion):])
	if err != nil || len(b) != 72 {
		return bad("malformed")
	}
	body, mac := b[:56], b[56:]
	if !hmac.Equal(mac, receiptMAC(key, shard, body)) {
		return bad("bad signature")
	}
	if binary.BigEndian.Uint64(body) != ns {
		return bad("issued to another user")
	}
	if time.Unix(int64(binary.BigEndian.Uint64(body[48:])), 0).Before(now) {
		return bad("expired: upload the block again")
	}
	var ref raftmeta.Sum
	copy(ref[:], body[8:40])
	return ref, int64(binary.BigEndian.Uint64(body[40:48])), nil
}

// maxBlockBody bounds PUT /v1/blocks: the largest block plus nothing.
const maxBlockBody = blockstore.DefaultMaxBlockSize

func (s *Server) putBlock(w http.ResponseWriter, r *http.Request, cl auth.Claims) {
	ref, err := blockstore.ParseRef(r.PathValue("ref"))
	if err != nil {
		wire.WriteError(w, http.StatusBadRequest, "invalid_ref", err.Error())
		return
	}
	if r.ContentLength > maxBlockBody {
		wire.WriteError(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("a block is at most %d bytes", maxBlockBody))
		return
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, maxBlockBody+1))
	if err != nil {
		wire.WriteError(w, http.StatusBadRequest, "invalid_argument", "reading the block: "+err.Error())
		return
	}
	if len(data) > maxBlockBody {
		wire.WriteError(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("a block is at most %d bytes", maxBlockBody))
		return
	}
	// Blocks.Put verifies data against ref before it contacts any node
	// (ErrHashMismatch, answered 400 hash_mismatch).
	key, ok := s.receiptKey(w, r)
	if !ok {
		return
	}
	ctx, cancel := s.callCtx(r)
	defer cancel()
	if err := s.cfg.Blocks.Put(ctx, ref, data); err != nil {
		s.writeMetaError(w, r, err)
		return
	}
	if s.cache != nil {
		s.cache.Add(ref, data)
	}
	rc := makeReceipt(key, cl.Shard, cl.Namespace, ref, int64(len(data)), s.cfg.Now().Add(ReceiptTTL))
	wire.WriteJSON(w, http.StatusOK, wire.BlockReceipt{Ref: ref.String(), Size: int64(len(data)), Receipt: rc})
}

// receiptKey returns the block receipt key, derived from the cluster's
// signing key; while that is not known yet it has answered 503.
func (s *Server) receiptKey(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	if _, err := s.getSigner(r.Context()); err != nil {
		retryAfter(w, time.Second)
		wire.WriteError(w, http.StatusServiceUnavailable, "unavailable", "the cluster key is not available yet")
		return nil, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rcpt, true
}

// maxMissingRefs bounds one POST /v1/blocks/missing.
const maxMissingRefs = raftmeta.MaxRefsPerQuery

// missingBlocks answers which refs the caller must upload: those its own
// namespace does not reference. Whether another user stores the same bytes
// is never consulted, so the answer reveals nothing about them.
func (s *Server) missingBlocks(w http.ResponseWriter, r *http.Request, cl auth.Claims) {
	var req wire.MissingRequest
	if !decodeJSON(w, r, s.cfg.MaxJSONBody, &req) {
		return
	}
	if len(req.Refs) > maxMissingRefs {
		wire.WriteError(w, http.StatusBadRequest, "invalid_argument", fmt.Sprintf("at most %d refs per request", maxMissingRefs))
		return
	}
	sums, ok := parseRefs(w, req.Refs)
	if !ok {
		return
	}
	ctx, cancel := s.callCtx(r)
	defer cancel()
	have, err := s.cfg.Meta.Referenced(ctx, cl.Shard, cl.Namespace, sums, raftmeta.ReadOptions{})
	if err != nil {
		s.writeMetaError(w, r, err)
		return
	}
	out := wire.MissingResponse{Missing: []string{}}
	for i, ok := range have {
		if !ok {
			out.Missing = append(out.Missing, req.Refs[i])
		}
	}
	wire.WriteJSON(w, http.StatusOK, out)
}

// vouched checks a commit's receipts and returns the blocks they vouch
// for. The shard then refuses, inside the commit's apply, any block a put
// names that the caller's namespace does not reference and no receipt
// covers (raftmeta.CommitRequest.Check): checked there, the rule holds at
// the moment the commit lands, which block garbage collection relies on.
// A bad receipt is ErrInvalidArgument.
func (s *Server) vouched(key []byte, cl auth.Claims, receipts []string) ([]raftmeta.Block, error) {
	now := s.cfg.Now()
	out := make([]raftmeta.Block, 0, len(receipts))
	for _, rc := range receipts {
		ref, size, err := checkReceipt(key, cl.Shard, cl.Namespace, rc, now)
		if err != nil {
			return nil, err
		}
		out = append(out, raftmeta.Block{Ref: ref, Size: size})
	}
	return out, nil
}

// parseRev parses a revision number in a header or query ("7" or the
// ETag form "\"7\"").
func parseRev(v string) (uint64, error) {
	v = strings.TrimPrefix(strings.TrimSpace(v), "W/")
	v = strings.Trim(v, `"`)
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("%w: %q is not a revision number", raftmeta.ErrInvalidArgument, v)
	}
	return n, nil
}

// parseRefs parses a request's block refs, answering 400 invalid_ref (and
// false) for the first that is not 64 hex digits.
func parseRefs(w http.ResponseWriter, refs []string) ([]raftmeta.Sum, bool) {
	sums := make([]raftmeta.Sum, len(refs))
	for i, h := range refs {
		sum, err := raftmeta.ParseSum(h)
		if err != nil {
			wire.WriteError(w, http.StatusBadRequest, "invalid_ref", fmt.Sprintf("refs[%d]: %v", i, err))
			return nil, false
		}
		sums[i] = sum
	}
	return sums, true
}
