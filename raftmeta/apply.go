package raftmeta

import (
	"fmt"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/coffer-dev/coffer/raftmeta/metapath"
	"golang.org/x/text/unicode/norm"
)

// apply dispatches a decoded command. A refusal is a result with Err set;
// an error return is a storage failure or corruption.
func (t *tx) apply(c *command) (*result, error) {
	switch c.Type {
	case cmdCreateUser:
		if c.CreateUser != nil {
			return t.createUser(c.CreateUser)
		}
	case cmdSetPassword:
		if c.SetPassword != nil {
			return t.updateUser(c.SetPassword.Name, func(u *User) *OpError {
				if c.SetPassword.PasswordHash == "" {
					return opErr(CodeInvalidArgument, "", "empty password hash")
				}
				u.PasswordHash = c.SetPassword.PasswordHash
				endSessions(u, t.now) // a new password ends every session
				return nil
			})
		}
	case cmdSetQuota:
		if c.SetQuota != nil {
			return t.updateUser(c.SetQuota.Name, func(u *User) *OpError {
				if c.SetQuota.Quota < 0 {
					return opErr(CodeInvalidArgument, "", "negative quota")
				}
				u.Quota = c.SetQuota.Quota
				return nil
			})
		}
	case cmdRevokeSessions:
		if c.RevokeSessions != nil {
			return t.updateUser(c.RevokeSessions.Name, func(u *User) *OpError {
				endSessions(u, t.now)
				return nil
			})
		}
	case cmdRevokeToken:
		if c.RevokeToken != nil {
			return t.revokeToken(c.RevokeToken)
		}
	case cmdDeleteUser:
		if c.DeleteUser != nil {
			return t.deleteUser(c.DeleteUser.Name)
		}
	case cmdCommit:
		if c.Commit != nil {
			return t.commit(c.RequestID, c.Commit)
		}
	case cmdPrune:
		if c.Prune != nil {
			return t.prune(c.Prune)
		}
	case cmdCreateUpload:
		if c.CreateUpload != nil {
			return t.createUpload(c.CreateUpload)
		}
	case cmdAppendUpload:
		if c.AppendUpload != nil {
			return t.appendUpload(c.AppendUpload)
		}
	case cmdDeleteUpload:
		if c.DeleteUpload != nil {
			return t.deleteUpload(c.DeleteUpload)
		}
	}
	return &result{Err: opErr(CodeInvalidArgument, "", fmt.Sprintf("malformed command of type %d", c.Type))}, nil
}

// MaxUserNameBytes is the longest user name accepted.
const MaxUserNameBytes = 64

// CleanUserName validates a user name and returns it NFC-normalised. A name
// is 1 to 64 bytes of letters, digits and the characters . _ - @ +, and
// starts with a letter or digit. Names are unique case-insensitively.
func CleanUserName(name string) (string, error) {
	bad := func(why string) (string, error) {
		return "", fmt.Errorf("%w %q: %s", ErrInvalidName, name, why)
	}
	if !utf8.ValidString(name) {
		return bad("not valid UTF-8")
	}
	name = norm.NFC.String(name)
	if name == "" {
		return bad("empty")
	}
	if len(name) > MaxUserNameBytes {
		return bad(fmt.Sprintf("longer than %d bytes", MaxUserNameBytes))
	}
	for i, r := range name {
		switch {
		case unicode.IsLetter(r), unicode.IsDigit(r), unicode.IsMark(r) && i > 0:
		case i > 0 && (r == '.' || r == '_' || r == '-' || r == '@' || r == '+'):
		default:
			return bad(fmt.Sprintf("character %q not allowed", r))
		}
	}
	return name, nil
}

func (t *tx) createUser(c *createUserCmd) (*result, error) {
	name, err := CleanUserName(c.Name)
	if err != nil {
		return &result{Err: opErr(CodeInvalidName, "", err.Error())}, nil
	}
	if c.PasswordHash == "" {
		return &result{Err: opErr(CodeInvalidArgument, "", "empty password hash")}, nil
	}
	if c.Quota < 0 {
		return &result{Err: opErr(CodeInvalidArgument, "", "negative quota")}, nil
	}
	fold := metapath.Fold(name)
	if existing, err := t.userByName(fold); err != nil {
		return nil, err
	} else if existing != nil {
		return &result{Err: opErr(CodeExists, "", fmt.Sprintf("user name %q is taken", existing.Name))}, nil
	}
	var ids [3]uint64
	for i := range ids {
		if ids[i], err = t.newID(); err != nil {
			return nil, err
		}
	}
	u := &User{
		ID: ids[0], Name: name, PasswordHash: c.PasswordHash, Quota: c.Quota,
		Admin: c.Admin, Namespace: ids[1], Created: time.Unix(0, t.now).UTC(),
	}
	ns := &Namespace{ID: ids[1], Owner: u.ID, Root: ids[2]}
	root := &Node{ID: ids[2], Namespace: ns.ID, Dir: true, Mode: 0o755, Rev: 1, Modified: t.now}
	for _, err := range []error{
		t.putJSON(t.k.user(u.ID), u),
		t.putU64(t.k.userName(fold), u.ID),
		t.putJSON(t.k.namespace(ns.ID), ns),
		t.putJSON(t.k.node(ns.ID, root.ID), root),
		t.putRevision(ns.ID, root.ID, revisionOf(root, OpMkdir, t.now)),
	} {
		if err != nil {
			return nil, err
		}
	}
	return &result{User: u}, nil
}

// updateUser loads the live user name, lets fn change it and stores it.
func (t *tx) updateUser(name string, fn func(*User) *OpError) (*result, error) {
	u, err := t.liveUser(name)
	if err != nil {
		return nil, err
	}
	if u == nil {
		return &result{Err: opErr(CodeNotFound, "", fmt.Sprintf("no user %q", name))}, nil
	}
	if e := fn(u); e != nil {
		return &result{Err: e}, nil
	}
	if err := t.putJSON(t.k.user(u.ID), u); err != nil {
		return nil, err
	}
	return &result{User: u}, nil
}

func (t *tx) liveUser(name string) (*User, error) {
	clean, err := CleanUserName(name)
	if err != nil {
		return nil, nil
	}
	u, err := t.userByName(metapath.Fold(clean))
	if err != nil || u == nil || u.Deleted {
		return nil, err
	}
	return u, nil
}

// deleteUser marks the user and their namespace deleted and frees the name.
// The namespace's keys stay until a later garbage collection reclaims them.
func (t *tx) deleteUser(name string) (*result, error) {
	u, err := t.liveUser(name)
	if err != nil {
		return nil, err
	}
	if u == nil {
		return &result{Err: opErr(CodeNotFound, "", fmt.Sprintf("no user %q", name))}, nil
	}
	u.Deleted = true
	ns, err := t.namespace(u.Namespace)
	if err != nil {
		return nil, err
	}
	if ns != nil {
		ns.Deleted = true
		if err := t.putJSON(t.k.namespace(ns.ID), ns); err != nil {
			return nil, err
		}
	}
	if err := t.putJSON(t.k.user(u.ID), u); err != nil {
		return nil, err
	}
	if err := t.del(t.k.userName(metapath.Fold(u.Name))); err != nil {
		return nil, err
	}
	return &result{User: u}, nil
}

// revisionOf records a node's current state as revision n.Rev.
func revisionOf(n *Node, op OpKind, now int64) *Revision {
	return &Revision{
		Rev: n.Rev, Op: op, Time: now, Deleted: n.Deleted, ParentID: n.ParentID,
		Name: n.Name, Dir: n.Dir, Size: n.Size, Mtime: n.Mtime, Mode: n.Mode,
		Hash: n.Hash, Blocks: n.Blocks,
	}
}
