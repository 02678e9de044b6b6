package ignore

import (
	"errors"
	"strings"
	"unicode"
	"unicode/utf8"
)

// A rule is one compiled pattern line.
type rule struct {
	negate   bool      // "!" line: a match includes the path again
	dirOnly  bool      // trailing "/": matches folders only
	basename bool      // no "/": segs[0] is matched against the last element
	doubled  bool      // segs holds a "**" element
	segs     []segment // anchored: one per path element
	minElems int       // anchored: elements a matching path has at least
}

// match reports whether the path made of elems (at least one) matches r.
func (r *rule) match(elems []string) bool {
	if r.basename {
		return r.segs[0].match(elems[len(elems)-1])
	}
	if len(elems) < r.minElems || (!r.doubled && len(elems) != r.minElems) {
		return false
	}
	return matchElems(r.segs, elems)
}

type segKind uint8

const (
	segExact      segKind = iota // the element equals lit
	segPrefix                    // lit + "*"
	segSuffix                    // "*" + lit
	segAny                       // "*": any one element
	segGlob                      // anything else, in toks
	segDoubleStar                // "**": zero or more elements
)

// A segment is the part of a pattern that matches one path element (or, for
// "**", any number of them).
type segment struct {
	kind segKind
	lit  string
	toks []token
}

func (s *segment) match(e string) bool {
	switch s.kind {
	case segExact:
		return e == s.lit
	case segPrefix:
		return strings.HasPrefix(e, s.lit)
	case segSuffix:
		return strings.HasSuffix(e, s.lit)
	case segAny:
		return true
	case segGlob:
		return matchToks(s.toks, e)
	}
	return false
}

type tokKind uint8

const (
	tokLit   tokKind = iota // one character, in lit
	tokOne                  // "?"
	tokStar                 // "*"
	tokClass                // "[...]"
)

type token struct {
	kind  tokKind
	lit   string
	class *charClass
}

// matchToks matches one path element against a glob. Every token but "*"
// consumes exactly one character, so on a mismatch it is enough to let the
// last "*" seen swallow one more character and retry: O(len(toks)*len(e)).
func matchToks(toks []token, e string) bool {
	ti, ei := 0, 0
	starT, starE := -1, 0
	for ei < len(e) {
		if ti < len(toks) {
			t := &toks[ti]
			if t.kind == tokStar {
				starT, starE = ti, ei
				ti++
				continue
			}
			if n := t.consume(e[ei:]); n > 0 {
				ti++
				ei += n
				continue
			}
		}
		if starT < 0 {
			return false
		}
		_, w := utf8.DecodeRuneInString(e[starE:])
		starE += w
		ti, ei = starT+1, starE
	}
	for ti < len(toks) && toks[ti].kind == tokStar {
		ti++
	}
	return ti == len(toks)
}

// consume returns how many bytes at the start of s the token matches, 0 for
// none. s is not empty and t is not a "*".
func (t *token) consume(s string) int {
	switch t.kind {
	case tokLit:
		if strings.HasPrefix(s, t.lit) {
			return len(t.lit)
		}
		return 0
	case tokOne:
		_, w := utf8.DecodeRuneInString(s)
		return w
	case tokClass:
		r, w := utf8.DecodeRuneInString(s)
		if t.class.match(r) {
			return w
		}
	}
	return 0
}

// matchElems matches path elements against segments, where "**" takes any
// number of elements: the same last-star retry as matchToks, one level up.
func matchElems(segs []segment, elems []string) bool {
	si, ei := 0, 0
	starS, starE := -1, 0
	for ei < len(elems) {
		if si < len(segs) {
			s := &segs[si]
			if s.kind == segDoubleStar {
				starS, starE = si, ei
				si++
				continue
			}
			if s.match(elems[ei]) {
				si++
				ei++
				continue
			}
		}
		if starS < 0 {
			return false
		}
		starE++
		si, ei = starS+1, starE
	}
	for si < len(segs) && segs[si].kind == segDoubleStar {
		si++
	}
	return si == len(segs)
}

// compile fills r.segs from p: the pattern without "!", the trailing "/"
// and, when anchored, the leading "/".
func (r *rule) compile(p string, anchored bool) error {
	var (
		segs  []segment
		toks  []token
		stars int // "*" characters in the current element
	)
	endSeg := func() {
		// An element made only of two or more stars is "**"; other runs
		// of stars were folded into one tokStar and act as "*".
		double := anchored && stars >= 2 && len(toks) == 1
		segs = append(segs, newSegment(toks, double))
		toks, stars = nil, 0
	}
	for i := 0; i < len(p); {
		c, w := utf8.DecodeRuneInString(p[i:])
		i += w
		switch c {
		case '/':
			endSeg()
			continue
		case '*':
			stars++
			if len(toks) == 0 || toks[len(toks)-1].kind != tokStar {
				toks = append(toks, token{kind: tokStar})
			}
		case '?':
			toks = append(toks, token{kind: tokOne})
		case '[':
			cl, next, err := parseClass(p, i)
			if err != nil {
				return err
			}
			i = next
			toks = append(toks, token{kind: tokClass, class: cl})
		case '\\':
			if i >= len(p) {
				return errors.New("trailing unescaped \\")
			}
			c, w = utf8.DecodeRuneInString(p[i:])
			i += w
			if c == '/' {
				endSeg()
				continue
			}
			toks = append(toks, token{kind: tokLit, lit: p[i-w : i]})
		default:
			toks = append(toks, token{kind: tokLit, lit: p[i-w : i]})
		}
	}
	endSeg()

	if !anchored {
		r.basename = true
		r.segs = segs
		return nil
	}
	// A trailing "**" matches everything inside, so at least one element:
	// "foo/**" does not match foo itself.
	if segs[len(segs)-1].kind == segDoubleStar {
		segs = append(segs[:len(segs)-1], segment{kind: segAny}, segment{kind: segDoubleStar})
	}
	for _, s := range segs {
		if s.kind == segDoubleStar {
			r.doubled = true
		} else {
			r.minElems++
		}
	}
	r.segs = segs
	return nil
}

// newSegment classifies the tokens of one element. A run of stars is kept
// as a single tokStar, so a whole element "**" arrives as one token.
func newSegment(toks []token, doubleStar bool) segment {
	if doubleStar {
		return segment{kind: segDoubleStar}
	}
	lits := func(ts []token) (string, bool) {
		var b strings.Builder
		for _, t := range ts {
			if t.kind != tokLit {
				return "", false
			}
			b.WriteString(t.lit)
		}
		return b.String(), true
	}
	if lit, ok := lits(toks); ok {
		return segment{kind: segExact, lit: lit}
	}
	if len(toks) == 1 && toks[0].kind == tokStar {
		return segment{kind: segAny}
	}
	if toks[0].kind == tokStar {
		if lit, ok := lits(toks[1:]); ok {
			return segment{kind: segSuffix, lit: lit}
		}
	}
	if toks[len(toks)-1].kind == tokStar {
		if lit, ok := lits(toks[:len(toks)-1]); ok {
			return segment{kind: segPrefix, lit: lit}
		}
	}
	return segment{kind: segGlob, toks: toks}
}

// A charClass is a compiled "[...]" set.
type charClass struct {
	negated bool
	ranges  []runeRange
	named   []func(rune) bool
}

type runeRange struct{ lo, hi rune }

func (c *charClass) match(r rune) bool {
	in := false
	for _, rg := range c.ranges {
		if rg.lo <= r && r <= rg.hi {
			in = true
			break
		}
	}
	if !in {
		for _, f := range c.named {
			if f(r) {
				in = true
				break
			}
		}
	}
	return in != c.negated
}

var errUnterminated = errors.New("unterminated [ set")

// parseClass parses a set whose "[" ends just before p[i], following git's
// wildmatch: "!" or "^" first negates; a "]" first is literal; "a-z" is a
// range unless "-" is first or last; "\" escapes; "[:name:]" is a POSIX
// class. It returns the set and the index after its closing "]".
func parseClass(p string, i int) (*charClass, int, error) {
	c := &charClass{}
	if i < len(p) && (p[i] == '!' || p[i] == '^') {
		c.negated = true
		i++
	}
	prev := rune(-1) // the last single character, which may start a range
	for first := true; ; first = false {
		if i >= len(p) {
			return nil, 0, errUnterminated
		}
		r, w := utf8.DecodeRuneInString(p[i:])
		switch {
		case r == ']' && !first:
			return c, i + w, nil
		case r == '\\':
			i += w
			if i >= len(p) {
				return nil, 0, errUnterminated
			}
			r, w = utf8.DecodeRuneInString(p[i:])
			i += w
			c.ranges = append(c.ranges, runeRange{r, r})
			prev = r
		case r == '-' && prev >= 0 && i+1 < len(p) && p[i+1] != ']':
			i += w
			hi, w := utf8.DecodeRuneInString(p[i:])
			i += w
			if hi == '\\' {
				if i >= len(p) {
					return nil, 0, errUnterminated
				}
				hi, w = utf8.DecodeRuneInString(p[i:])
				i += w
			}
			c.ranges = append(c.ranges, runeRange{prev, hi})
			prev = -1
		case r == '[' && i+1 < len(p) && p[i+1] == ':':
			end := strings.IndexByte(p[i+2:], ']')
			if end < 0 {
				return nil, 0, errUnterminated
			}
			end += i + 2 // index of the "]"
			if end-1 < i+2 || p[end-1] != ':' {
				// No ":]": the "[" is just a character of the set.
				c.ranges = append(c.ranges, runeRange{'[', '['})
				prev = '['
				i++
				continue
			}
			name := p[i+2 : end-1]
			f, ok := posixClasses[name]
			if !ok {
				return nil, 0, errors.New("unknown class [:" + name + ":]")
			}
			c.named = append(c.named, f)
			prev = -1
			i = end + 1
		default:
			c.ranges = append(c.ranges, runeRange{r, r})
			prev = r
			i += w
		}
	}
}

var posixClasses = map[string]func(rune) bool{
	"alnum": func(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) },
	"alpha": unicode.IsLetter,
	"blank": func(r rune) bool { return r == ' ' || r == '\t' },
	"cntrl": unicode.IsControl,
	"digit": unicode.IsDigit,
	"graph": func(r rune) bool { return unicode.IsGraphic(r) && !unicode.IsSpace(r) },
	"lower": unicode.IsLower,
	"print": unicode.IsPrint,
	"punct": unicode.IsPunct,
	"space": unicode.IsSpace,
	"upper": unicode.IsUpper,
	"xdigit": func(r rune) bool {
		return '0' <= r && r <= '9' || 'a' <= r && r <= 'f' || 'A' <= r && r <= 'F'
	},
}
