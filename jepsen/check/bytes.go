package check

import (
	"fmt"
	"strings"

	"github.com/coffer-dev/coffer/jepsen/history"
)

// Bytes checks whole-file uploads against downloads made at the end.
// uploads are KindUpload ops whose Input is a history.UploadInput (the
// SHA-256 of the bytes sent to Key); final maps each path downloaded at the
// end to the SHA-256 (hex) of the bytes received, and has no entry for a
// path that was not found.
//
// For each key, the content at the end must be that of an ok or unknown
// upload not superseded by an ok upload called after it returned; it may be
// absent only if no upload of the key is ok. Content that matches no upload
// is torn or corrupt; content of a failed upload must never appear. A path
// in final that no upload named is unexpected.
func Bytes(uploads []history.Op, final map[string]string) Result {
	const name = "bytes"
	var p problems
	byKey := map[string][]history.Op{}
	for _, o := range uploads {
		byKey[o.Key] = append(byKey[o.Key], o)
	}
	var okKeys, matched, absentOK, lost, torn, stale, failedSeen, unexpected int
	for _, key := range sortedKeys(byKey) {
		ups := byKey[key]
		hashOf := make([]string, len(ups))
		anyOK := false
		for i, o := range ups {
			var in history.UploadInput
			if err := o.DecodeInput(&in); err != nil || in.SHA256 == "" {
				p.add("malformed: %s: no SHA-256 in its input", o)
				continue
			}
			hashOf[i] = strings.ToLower(in.SHA256)
			if o.Status == history.StatusOK {
				anyOK = true
			} else if !o.Status.Valid() {
				p.add("malformed: %s: status %q", o, o.Status)
			}
		}
		if anyOK {
			okKeys++
		}
		got, present := final[key]
		got = strings.ToLower(got)
		if !present {
			if anyOK {
				lost++
				p.add("lost: %q was uploaded (ok) but is absent at the end", key)
			} else {
				absentOK++
			}
			continue
		}
		allowed, superseded, failed := false, false, false
		for i, o := range ups {
			if hashOf[i] == "" || hashOf[i] != got {
				continue
			}
			switch {
			case o.Status == history.StatusFail:
				failed = true
			case o.Status != history.StatusOK && o.Status != history.StatusUnknown:
			case supersededUpload(o, ups):
				superseded = true
			default:
				allowed = true
			}
		}
		switch {
		case allowed:
			matched++
		case superseded:
			stale++
			p.add("stale: %q holds %s, the content of an upload that a later acknowledged upload replaced", key, got)
		case failed:
			failedSeen++
			p.add("failed upload visible: %q holds %s, which only a failed upload sent", key, got)
		default:
			torn++
			p.add("torn or corrupt: %q holds %s, which no upload of it sent", key, got)
		}
	}
	for _, key := range sortedKeys(final) {
		if _, ok := byKey[key]; !ok {
			unexpected++
			p.add("unexpected: %q is present but was never uploaded", key)
		}
	}
	summary := fmt.Sprintf("%d keys uploaded (%d acknowledged): %d match, %d absent without an ok upload, %d lost, %d torn or corrupt, %d stale, %d failed uploads visible, %d unexpected",
		len(byKey), okKeys, matched, absentOK, lost, torn, stale, failedSeen, unexpected)
	return p.result(name, summary)
}

// supersededUpload reports whether an ok upload of the same key was called
// after o returned (an unknown o never returned, so is never superseded).
func supersededUpload(o history.Op, ups []history.Op) bool {
	if o.Status != history.StatusOK {
		return false
	}
	for _, w := range ups {
		if w.Status == history.StatusOK && w.Call > o.Return {
			return true
		}
	}
	return false
}
