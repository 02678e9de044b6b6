package raftmeta

import (
	"context"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/coffer-dev/coffer/raftmeta/metapath"
)

// CreateUserRequest creates a user and their namespace.
type CreateUserRequest struct {
	RequestID string
	Name      string
	Password  string
	Quota     int64 // bytes; 0 means unlimited
	Admin     bool
}

// CreateUser creates a user (the name is unique case-insensitively) with an
// empty namespace. The password is hashed with argon2id here, before it is
// proposed: the log and the state hold only the hash.
func (s *Shard) CreateUser(ctx context.Context, r CreateUserRequest) (*User, error) {
	if err := checkRequestID(r.RequestID); err != nil {
		return nil, err
	}
	if _, err := CleanUserName(r.Name); err != nil {
		return nil, err
	}
	hash, err := HashPassword(r.Password, s.cfg.Password)
	if err != nil {
		return nil, err
	}
	res, err := s.propose(ctx, &command{Type: cmdCreateUser, RequestID: r.RequestID, CreateUser: &createUserCmd{
		Name: r.Name, PasswordHash: hash, Quota: r.Quota, Admin: r.Admin,
	}})
	if err != nil {
		return nil, err
	}
	return res.User, nil
}

// reusedRequestID is the error of a command whose request ID found the
// stored result of another kind of command in the dedup window: request
// IDs must not be reused (nothing was applied).
func reusedRequestID(rid string) error {
	return fmt.Errorf("%w: request ID %q was used by another command", ErrInvalidArgument, rid)
}

// checkUserCommand validates what a user command carries before it is
// proposed.
func checkUserCommand(requestID, name string) error {
	if err := checkRequestID(requestID); err != nil {
		return err
	}
	_, err := CleanUserName(name)
	return err
}

// SetPassword replaces a user's password and ends every session of the
// user: SessionsValidAfter moves to the command's proposal time.
func (s *Shard) SetPassword(ctx context.Context, requestID, name, password string) error {
	if err := checkUserCommand(requestID, name); err != nil {
		return err
	}
	hash, err := HashPassword(password, s.cfg.Password)
	if err != nil {
		return err
	}
	_, err = s.propose(ctx, &command{Type: cmdSetPassword, RequestID: requestID, SetPassword: &setPasswordCmd{Name: name, PasswordHash: hash}})
	return err
}

// RevokeSessions ends every session of a user ("log out everywhere"): each
// token issued at or before the command's proposal time is revoked. It
// returns the user with the new SessionsValidAfter. SetPassword does the
// same as part of a password change.
func (s *Shard) RevokeSessions(ctx context.Context, requestID, name string) (*User, error) {
	if err := checkUserCommand(requestID, name); err != nil {
		return nil, err
	}
	res, err := s.propose(ctx, &command{Type: cmdRevokeSessions, RequestID: requestID, RevokeSessions: &userNameCmd{Name: name}})
	if err != nil {
		return nil, err
	}
	return res.User, nil
}

// RevokeToken revokes one session token ("log out this session") until
// expires, the token's own expiry, after which the token is invalid anyway
// and the record is pruned. The token ID is 1 to 64 lower-case hex digits;
// expires must lie after the proposal time and at most MaxTokenLifetime
// ahead of it (ErrInvalidArgument otherwise). Revoking a token again
// succeeds and changes nothing.
func (s *Shard) RevokeToken(ctx context.Context, requestID, tokenID string, expires time.Time) error {
	if err := checkRequestID(requestID); err != nil {
		return err
	}
	if err := checkTokenID(tokenID); err != nil {
		return err
	}
	// The state machine checks the expiry again against the time stamped
	// on the entry; this only keeps plainly bad input out of the log.
	if err := checkTokenExpiry(expires.UnixNano(), s.cfg.Now().UnixNano()); err != nil {
		return err
	}
	_, err := s.propose(ctx, &command{Type: cmdRevokeToken, RequestID: requestID, RevokeToken: &revokeTokenCmd{TokenID: tokenID, Expires: expires.UnixNano()}})
	return err
}

// SetQuota sets a user's quota in bytes (0: unlimited). Usage already above
// a lowered quota stays; commits that would add bytes are refused.
func (s *Shard) SetQuota(ctx context.Context, requestID, name string, quota int64) error {
	if err := checkUserCommand(requestID, name); err != nil {
		return err
	}
	_, err := s.propose(ctx, &command{Type: cmdSetQuota, RequestID: requestID, SetQuota: &setQuotaCmd{Name: name, Quota: quota}})
	return err
}

// DeleteUser deletes a user: the name is free at once, the namespace is
// marked deleted and its records are left for a later garbage collection.
func (s *Shard) DeleteUser(ctx context.Context, requestID, name string) error {
	if err := checkUserCommand(requestID, name); err != nil {
		return err
	}
	_, err := s.propose(ctx, &command{Type: cmdDeleteUser, RequestID: requestID, DeleteUser: &userNameCmd{Name: name}})
	return err
}

// CommitRequest is a batch of ops on one namespace, applied all or nothing.
type CommitRequest struct {
	RequestID string
	Namespace uint64
	Ops       []Op
	// Upload, if set, finishes the namespace's upload session of that ID:
	// the batch must be one put op with no Blocks and the upload's Size
	// (else ErrOffsetMismatch, with the upload's size as Offset), and the
	// op gets the upload's blocks, in order. The upload is deleted by the
	// same entry; if the commit fails, it stays. An unknown or expired
	// upload is ErrNotFound.
	Upload string `json:"upload,omitempty"`
	// Check, if set, refuses a put op that names a block the namespace
	// does not reference at the moment the commit applies — unless the
	// block is in Check.Vouched (the caller saw proof that this user
	// stored it: a block receipt). It is checked inside the state machine,
	// where block garbage collection can rely on it (blockstore/gc's
	// safety argument: a block is named only while referenced, or within
	// its grace period after it was stored). A refused block is
	// ErrNotFound naming the block. A gateway committing blocks it stored
	// itself leaves Check nil.
	Check *BlockCheck `json:"check,omitempty"`
}

// BlockCheck is the block check of a commit (CommitRequest.Check).
type BlockCheck struct {
	// Vouched are the blocks the caller proved this user stored (ref and
	// size must both match the op's block).
	Vouched []Block `json:"vouched,omitempty"`
}

// Commit applies a batch of ops atomically and appends one journal record.
// If any op fails, nothing applies and the error is an *OpError naming the
// op and the target's current revision. Commits that retry a request ID
// return the first attempt's result without applying anything again.
//
// The caller (the gateway) must have stored every block an op references
// before committing: the state machine cannot see the block store.
func (s *Shard) Commit(ctx context.Context, r CommitRequest) (*CommitResult, error) {
	if err := checkRequestID(r.RequestID); err != nil {
		return nil, err
	}
	if len(r.Ops) == 0 || len(r.Ops) > MaxOpsPerCommit {
		return nil, fmt.Errorf("%w: a commit has 1 to %d ops", ErrInvalidArgument, MaxOpsPerCommit)
	}
	if r.Upload != "" {
		if err := checkUploadID(r.Upload); err != nil {
			return nil, err
		}
	}
	// Paths must be checked before they are encoded: JSON would replace
	// invalid UTF-8 with U+FFFD and the state machine would see a
	// different, valid path. The state machine checks everything else.
	for i, op := range r.Ops {
		for _, p := range []string{op.Path, op.To} {
			if !utf8.ValidString(p) {
				return nil, &OpError{Code: CodeInvalidPath, Op: i, Kind: op.Kind, Path: p, Message: "not valid UTF-8"}
			}
		}
	}
	res, err := s.propose(ctx, &command{Type: cmdCommit, RequestID: r.RequestID, Commit: &commitCmd{Namespace: r.Namespace, Ops: r.Ops, Upload: r.Upload, Check: r.Check}})
	if err != nil {
		return nil, err
	}
	if res.Commit == nil {
		return nil, reusedRequestID(r.RequestID)
	}
	return res.Commit, nil
}

// CreateUpload opens a resumable upload session in namespace ns: id is 32
// lower-case hex digits chosen by the caller (random), path is where
// finishing it puts the file (checked, and stored cleaned, as a put's
// path). state and meta are opaque (at most MaxUploadStateBytes each). It
// expires UploadTTL after its proposal. Errors: ErrExists for an open
// upload of that ID, ErrTooMany when the namespace has
// MaxUploadsPerNamespace open ones, ErrNotFound for an unknown namespace.
// The request ID is scoped by the namespace, as a commit's.
func (s *Shard) CreateUpload(ctx context.Context, requestID string, ns uint64, id, path string, state, meta []byte) (*Upload, error) {
	for _, err := range []error{checkRequestID(requestID), checkUploadID(id), checkUploadBlob("state", state), checkUploadBlob("meta", meta)} {
		if err != nil {
			return nil, err
		}
	}
	if !utf8.ValidString(path) {
		return nil, opErr(CodeInvalidPath, path, "not valid UTF-8")
	}
	res, err := s.propose(ctx, &command{Type: cmdCreateUpload, RequestID: requestID, CreateUpload: &createUploadCmd{
		Namespace: ns, ID: id, Path: path, State: state, Meta: meta,
	}})
	if err != nil {
		return nil, err
	}
	if res.Upload == nil {
		return nil, reusedRequestID(requestID)
	}
	return res.Upload, nil
}

// AppendUpload adds blocks to an upload at offset, which must be the
// upload's Size (else an *OpError with CodeOffsetMismatch whose Offset is
// the Size: where to resume). No blocks is allowed: it only replaces the
// state. A non-empty state replaces the stored one; an empty one keeps
// it. An upload has at most MaxBlocksPerFile blocks, and one larger than
// the owner's quota is ErrQuota. An unknown or expired upload is
// ErrNotFound. A retry with the same request ID returns the first result.
func (s *Shard) AppendUpload(ctx context.Context, requestID string, ns uint64, id string, offset int64, blocks []Block, state []byte) (*Upload, error) {
	for _, err := range []error{checkRequestID(requestID), checkUploadID(id), checkUploadBlob("state", state)} {
		if err != nil {
			return nil, err
		}
	}
	if offset < 0 {
		return nil, fmt.Errorf("%w: negative offset", ErrInvalidArgument)
	}
	if _, err := checkUploadBlocks(blocks); err != nil {
		return nil, err
	}
	res, err := s.propose(ctx, &command{Type: cmdAppendUpload, RequestID: requestID, AppendUpload: &appendUploadCmd{
		Namespace: ns, ID: id, Offset: offset, Blocks: blocks, State: state,
	}})
	if err != nil {
		return nil, err
	}
	if res.Upload == nil {
		return nil, reusedRequestID(requestID)
	}
	return res.Upload, nil
}

// GetUpload returns an open upload of namespace ns. An unknown, expired
// (by the shard's clock) or other namespace's upload is ErrNotFound.
func (s *Shard) GetUpload(ctx context.Context, ns uint64, id string, o ReadOptions) (*Upload, error) {
	if err := checkUploadID(id); err != nil {
		return nil, err
	}
	var u *Upload
	err := s.read(ctx, o, func(v *view) error {
		var err error
		u, err = v.getUpload(ns, id, s.cfg.Now().UnixNano())
		return err
	})
	return u, err
}

// DeleteUpload deletes an open upload and its blocks (ErrNotFound if there
// is none).
func (s *Shard) DeleteUpload(ctx context.Context, requestID string, ns uint64, id string) error {
	if err := checkRequestID(requestID); err != nil {
		return err
	}
	if err := checkUploadID(id); err != nil {
		return err
	}
	_, err := s.propose(ctx, &command{Type: cmdDeleteUpload, RequestID: requestID, DeleteUpload: &uploadCmd{Namespace: ns, ID: id}})
	return err
}

// Referenced reports, for each ref, whether a retained revision of
// namespace ns names it: the blocks a client of that namespace need not
// upload again. It answers about ns only, never about other namespaces,
// so it reveals nothing of other users' content. At most MaxRefsPerQuery
// refs (ErrInvalidArgument); an unknown or deleted namespace is
// ErrNotFound.
func (s *Shard) Referenced(ctx context.Context, ns uint64, refs []Sum, o ReadOptions) ([]bool, error) {
	if len(refs) > MaxRefsPerQuery {
		return nil, fmt.Errorf("%w: %d refs in one query, at most %d", ErrInvalidArgument, len(refs), MaxRefsPerQuery)
	}
	var out []bool
	err := s.read(ctx, o, func(v *view) error {
		var err error
		out, err = v.referenced(ns, refs)
		return err
	})
	return out, err
}

// Namespace returns a namespace's record (usage, file count, journal
// head); ErrNotFound for an unknown or deleted namespace.
func (s *Shard) Namespace(ctx context.Context, ns uint64, o ReadOptions) (*Namespace, error) {
	var n *Namespace
	err := s.read(ctx, o, func(v *view) error {
		var err error
		n, err = v.liveNamespace(ns)
		return err
	})
	return n, err
}

// Users returns a page of the shard's live users in case-folded name
// order, without their password hashes.
func (s *Shard) Users(ctx context.Context, o UsersOptions) (*UserPage, error) {
	var p *UserPage
	err := s.read(ctx, o.ReadOptions, func(v *view) error {
		var err error
		p, err = v.users(o)
		return err
	})
	return p, err
}

// User returns a live user by name (case-insensitively).
func (s *Shard) User(ctx context.Context, name string, o ReadOptions) (*User, error) {
	clean, err := CleanUserName(name)
	if err != nil {
		return nil, err
	}
	var u *User
	err = s.read(ctx, o, func(v *view) error {
		var err error
		u, err = v.userByName(metapath.Fold(clean))
		if err == nil && (u == nil || u.Deleted) {
			err = opErr(CodeNotFound, "", fmt.Sprintf("no user %q", name))
		}
		return err
	})
	return u, err
}

// SessionsValidAfter returns the instant at or before which every token of
// a live user is revoked (zero if none was set), or ErrNotFound for an
// unknown or deleted user (ErrInvalidName for a malformed name, as User).
func (s *Shard) SessionsValidAfter(ctx context.Context, name string, o ReadOptions) (time.Time, error) {
	u, err := s.User(ctx, name, o)
	if err != nil {
		return time.Time{}, err
	}
	return u.SessionsValidAfter, nil
}

// TokenRevoked reports whether a session token was revoked by RevokeToken.
// It is false once the revocation's expiry (the token's own) has passed by
// the shard's clock: the token is invalid then anyway.
func (s *Shard) TokenRevoked(ctx context.Context, tokenID string, o ReadOptions) (bool, error) {
	if err := checkTokenID(tokenID); err != nil {
		return false, err
	}
	var revoked bool
	err := s.read(ctx, o, func(v *view) error {
		var err error
		revoked, err = v.tokenRevoked(tokenID, s.cfg.Now().UnixNano())
		return err
	})
	return revoked, err
}

// Authenticate checks a user's password and returns the user, or
// ErrBadCredentials (for an unknown user too, after the same argon2id work,
// so a login does not reveal whether a name exists).
func (s *Shard) Authenticate(ctx context.Context, name, password string) (*User, error) {
	u, err := s.User(ctx, name, ReadOptions{})
	if err != nil && CodeOf(err) != CodeNotFound && CodeOf(err) != CodeInvalidName {
		return nil, err
	}
	s.dummyOnce.Do(func() { s.dummy, _ = HashPassword("coffer-unknown-user", s.cfg.Password) })
	hash := s.dummy
	if u != nil {
		hash = u.PasswordHash
	}
	ok, verr := VerifyPassword(hash, password)
	if verr != nil {
		return nil, verr
	}
	if u == nil || !ok {
		return nil, ErrBadCredentials
	}
	return u, nil
}

// Stat returns the file or folder a target names.
func (s *Shard) Stat(ctx context.Context, ns uint64, t Target, o StatOptions) (*Entry, error) {
	var e *Entry
	err := s.read(ctx, o.ReadOptions, func(v *view) error {
		var err error
		e, err = v.stat(ns, t, o)
		return err
	})
	return e, err
}

// List returns a page of a folder's entries (its subtree, if recursive).
func (s *Shard) List(ctx context.Context, ns uint64, t Target, o ListOptions) (*ListPage, error) {
	var p *ListPage
	err := s.read(ctx, o.ReadOptions, func(v *view) error {
		var err error
		p, err = v.list(ns, t, o)
		return err
	})
	return p, err
}

// History returns a file's retained revisions, newest first, including
// deletions; it works for deleted files too.
func (s *Shard) History(ctx context.Context, ns uint64, t Target, o HistoryOptions) ([]Revision, error) {
	var revs []Revision
	err := s.read(ctx, o.ReadOptions, func(v *view) error {
		var err error
		revs, err = v.history(ns, t, o)
		return err
	})
	return revs, err
}

// Changes returns up to limit journal records after cursor (0: from the
// start). A cursor older than the journal's retained start, or ahead of
// its head, is ErrCursorExpired: list afresh and restart from Head.
func (s *Shard) Changes(ctx context.Context, ns, cursor uint64, limit int, o ReadOptions) (*ChangesPage, error) {
	var p *ChangesPage
	err := s.read(ctx, o, func(v *view) error {
		var err error
		p, err = v.changesAt(ns, cursor, limit, o.Stale)
		return err
	})
	return p, err
}

// WaitChanges is Changes that, when nothing follows the cursor, waits until
// a commit to the namespace is applied here (or timeout passes, giving an
// empty page).
func (s *Shard) WaitChanges(ctx context.Context, ns, cursor uint64, limit int, timeout time.Duration, o ReadOptions) (*ChangesPage, error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for first := true; ; first = false {
		ch := s.fsm.changed(ns)
		// Only the first read needs the leadership check: later ones read
		// this replica's newer state.
		p, err := s.Changes(ctx, ns, cursor, limit, ReadOptions{Stale: o.Stale || !first})
		if err != nil || len(p.Records) > 0 {
			return p, err
		}
		select {
		case <-ch:
		case <-timer.C:
			return p, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-s.stop:
			return nil, ErrClosed
		}
	}
}
