package ignore

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"golang.org/x/text/unicode/norm"
)

// ErrBadPattern is wrapped by the error Parse returns for a line it cannot
// compile (a *PatternError).
var ErrBadPattern = errors.New("bad ignore pattern")

// PatternError describes a bad line of an ignore file. It matches
// ErrBadPattern with errors.Is.
type PatternError struct {
	Line    int    // 1-based line number
	Pattern string // the line as written, trailing spaces trimmed
	Reason  string // what is wrong, e.g. "unterminated [ set"
}

func (e *PatternError) Error() string {
	return fmt.Sprintf("line %d: %v %q: %s", e.Line, ErrBadPattern, e.Pattern, e.Reason)
}

// Unwrap returns ErrBadPattern.
func (e *PatternError) Unwrap() error { return ErrBadPattern }

// stateDir is the sync engine's own folder at the root, always ignored.
const stateDir = ".coffer"

// Matcher answers whether a slash-separated path relative to the sync root
// is ignored. The zero value and a nil *Matcher behave like Default().
type Matcher struct {
	rules []rule // built-ins first, then the file's lines; the last match wins
}

// Parse reads gitignore-syntax rules (the content of a .cofferignore file at
// the sync root) and returns a Matcher holding them and the built-in rules.
// A bad pattern is a *PatternError (wrapping ErrBadPattern) naming its line;
// an error reading r is returned wrapped.
func Parse(r io.Reader) (*Matcher, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("ignore: read rules: %w", err)
	}
	rules, err := parseRules(data)
	if err != nil {
		return nil, err
	}
	all := make([]rule, 0, len(builtinRules)+len(rules))
	all = append(all, builtinRules...)
	all = append(all, rules...)
	return &Matcher{rules: all}, nil
}

// Default returns a Matcher holding only the built-in rules.
func Default() *Matcher {
	return &Matcher{rules: builtinRules}
}

// Ignored reports whether rel (e.g. "docs/a.txt": slash-separated, relative
// to the sync root, no leading or trailing slash, NFC) is ignored; dir says
// it is a folder. A path inside an ignored folder is ignored. The root
// itself ("" or ".") never is.
func (m *Matcher) Ignored(rel string, dir bool) bool {
	if rel == "" || rel == "." {
		return false
	}
	if rel == stateDir || strings.HasPrefix(rel, stateDir+"/") {
		return true
	}
	rules := builtinRules
	if m != nil && m.rules != nil {
		rules = m.rules
	}
	var buf [16]string
	elems := splitPath(buf[:0], rel)
	// As in git, a folder that is ignored hides everything below it, so
	// the folders above rel are checked first, outermost first.
	for k := 1; k < len(elems); k++ {
		if lastMatch(rules, elems[:k], true) {
			return true
		}
	}
	return lastMatch(rules, elems, dir)
}

// lastMatch applies rules to the path made of elems: the last rule that
// matches decides.
func lastMatch(rules []rule, elems []string, dir bool) bool {
	for i := len(rules) - 1; i >= 0; i-- {
		r := &rules[i]
		if r.dirOnly && !dir {
			continue
		}
		if r.match(elems) {
			return !r.negate
		}
	}
	return false
}

// splitPath appends the slash-separated elements of p to dst.
func splitPath(dst []string, p string) []string {
	for {
		i := strings.IndexByte(p, '/')
		if i < 0 {
			return append(dst, p)
		}
		dst = append(dst, p[:i])
		p = p[i+1:]
	}
}

// parseRules compiles the lines of an ignore file.
func parseRules(data []byte) ([]rule, error) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	var rules []rule
	for n := 1; len(data) > 0; n++ {
		var line []byte
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			line, data = data, nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		r, ok, err := parseLine(string(line))
		if err != nil {
			return nil, &PatternError{Line: n, Pattern: trimTrailingSpaces(string(line)), Reason: err.Error()}
		}
		if ok {
			rules = append(rules, r)
		}
	}
	return rules, nil
}

// parseLine compiles one line; ok is false for a line that holds no
// pattern (blank or comment, or one that can match nothing such as "/").
func parseLine(line string) (r rule, ok bool, err error) {
	if line == "" || line[0] == '#' {
		return rule{}, false, nil
	}
	p := norm.NFC.String(trimTrailingSpaces(line))
	if strings.HasPrefix(p, "!") {
		r.negate = true
		p = p[1:]
	}
	if strings.HasSuffix(p, "/") {
		r.dirOnly = true
		p = p[:len(p)-1]
	}
	anchored := strings.Contains(p, "/")
	if anchored {
		p = strings.TrimPrefix(p, "/")
	}
	if p == "" {
		return rule{}, false, nil
	}
	if err := r.compile(p, anchored); err != nil {
		return rule{}, false, err
	}
	return r, true, nil
}

// trimTrailingSpaces drops trailing spaces that are not escaped with a
// backslash, as git does (tabs stay).
func trimTrailingSpaces(s string) string {
	end := len(s)
	lastSpace := -1
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case ' ':
			if lastSpace < 0 {
				lastSpace = i
			}
		case '\\':
			i++
			if i >= len(s) {
				return s
			}
			lastSpace = -1
		default:
			lastSpace = -1
		}
	}
	if lastSpace >= 0 {
		end = lastSpace
	}
	return s[:end]
}
