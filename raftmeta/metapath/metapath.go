package metapath

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// MaxComponentBytes is the largest size, in bytes of NFC-normalised UTF-8, of
// one path component.
const MaxComponentBytes = 255

// MaxPathBytes is the largest size, in bytes of NFC-normalised UTF-8, of a
// whole canonical path, including its leading "/".
const MaxPathBytes = 4096

// Reasons given in Error.Reason. Reasons about a specific character, or about
// a length, are formatted with the offending value.
const (
	reasonInvalidUTF8    = "invalid UTF-8"
	reasonEmptyComponent = "empty component"
	reasonEmptyName      = "empty name"
	reasonDot            = `"." is not a valid name`
	reasonDotDot         = `".." is not a valid name`
	reasonNUL            = "contains NUL"
	reasonSlash          = `name contains "/"`
)

// Clean validates p and returns its canonical form: NFC-normalised, a leading
// "/", components joined by "/", no trailing "/". The root is "/" (input "" or
// "/" both give "/"). A single leading "/" and a single trailing "/" are
// accepted and dropped; anything else that yields an empty component ("a//b",
// "//a") is refused.
//
// Every component must satisfy the rules of CleanName, and the canonical path
// may be at most MaxPathBytes long. A refusal is an *Error.
func Clean(p string) (string, error) {
	if !utf8.ValidString(p) {
		return "", refuse(p, reasonInvalidUTF8)
	}
	if p == "" || p == "/" {
		return "/", nil
	}
	rest := norm.NFC.String(p)
	rest = strings.TrimPrefix(rest, "/")
	rest = strings.TrimSuffix(rest, "/")
	for c := range strings.SplitSeq(rest, "/") {
		if reason := checkComponent(c); reason != "" {
			return "", refuse(p, reason)
		}
	}
	clean := "/" + rest
	if len(clean) > MaxPathBytes {
		return "", refuse(p, fmt.Sprintf("path is %d bytes, more than %d", len(clean), MaxPathBytes))
	}
	return clean, nil
}

// CleanName validates one path component (a file or folder name) and returns
// it NFC-normalised. The name must be valid UTF-8, non-empty, not "." or "..",
// free of "/", NUL and other control characters (Unicode category Cc), and at
// most MaxComponentBytes long after normalisation. A refusal is an *Error.
func CleanName(name string) (string, error) {
	if !utf8.ValidString(name) {
		return "", refuse(name, reasonInvalidUTF8)
	}
	if name == "" {
		return "", refuse(name, reasonEmptyName)
	}
	if strings.Contains(name, "/") {
		return "", refuse(name, reasonSlash)
	}
	n := norm.NFC.String(name)
	if reason := checkComponent(n); reason != "" {
		return "", refuse(name, reason)
	}
	return n, nil
}

// checkComponent returns why the NFC-normalised component c, which holds no
// "/", is refused, or "" if it is acceptable.
func checkComponent(c string) string {
	switch c {
	case "":
		return reasonEmptyComponent
	case ".":
		return reasonDot
	case "..":
		return reasonDotDot
	}
	if reason := checkRunes(c); reason != "" {
		return reason
	}
	if len(c) > MaxComponentBytes {
		return fmt.Sprintf("name is %d bytes, more than %d", len(c), MaxComponentBytes)
	}
	return ""
}

// checkRunes returns why a character of s is refused, or "" if none is.
func checkRunes(s string) string {
	for _, r := range s {
		if r == 0 {
			return reasonNUL
		}
		if unicode.Is(unicode.Cc, r) {
			return fmt.Sprintf("contains control character %U", r)
		}
	}
	return ""
}

// Split returns the components of a path returned by Clean ("/" gives nil).
func Split(clean string) []string {
	if clean == "" || clean == "/" {
		return nil
	}
	return strings.Split(strings.TrimPrefix(clean, "/"), "/")
}

// Join joins a clean parent path and a clean name. An empty name gives parent.
func Join(parent, name string) string {
	switch {
	case name == "":
		return parent
	case parent == "" || parent == "/":
		return "/" + name
	default:
		return parent + "/" + name
	}
}

// Parent returns the parent path and last component of a clean path ("/a/b"
// gives "/a", "b"; "/a" gives "/", "a"; "/" gives "/", "").
func Parent(clean string) (dir, name string) {
	i := strings.LastIndexByte(clean, '/')
	if i <= 0 {
		return "/", clean[i+1:]
	}
	return clean[:i], clean[i+1:]
}

// IsAncestor reports whether clean path a is a strict ancestor of clean path
// b, comparing folded components ("/A" is an ancestor of "/a/b"). The root is
// an ancestor of every other path; no path is an ancestor of itself.
func IsAncestor(a, b string) bool {
	as, bs := Split(a), Split(b)
	if len(as) >= len(bs) {
		return false
	}
	for i, c := range as {
		if Fold(c) != Fold(bs[i]) {
			return false
		}
	}
	return true
}
