package metapath_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"github.com/coffer-dev/coffer/raftmeta/metapath"
)

// rep repeats s n times.
func rep(s string, n int) string { return strings.Repeat(s, n) }

// longPath returns a clean path of exactly n bytes (n >= 2) made of
// components of at most MaxComponentBytes bytes filled with "a".
func longPath(n int) string {
	var b strings.Builder
	for b.Len() < n {
		left := n - b.Len() - 1 // bytes left for the next component
		c := min(left, metapath.MaxComponentBytes)
		if left-c == 1 { // never leave room for just "/"
			c--
		}
		b.WriteString("/" + rep("a", c))
	}
	return b.String()
}

func TestLongPath(t *testing.T) {
	for _, n := range []int{2, 256, 257, 258, 4095, 4096, 4097} {
		p := longPath(n)
		if len(p) != n || strings.Contains(p, "//") || strings.HasSuffix(p, "/") {
			t.Fatalf("longPath(%d) = %d bytes, %q", n, len(p), p)
		}
	}
}

func TestCleanValid(t *testing.T) {
	// "é" is 2 bytes, "€" 3 bytes, "😀" 4 bytes.
	max255 := map[string]string{
		"ascii":  rep("a", 255),
		"2-byte": rep("é", 127) + "a",
		"3-byte": rep("€", 85),
		"4-byte": rep("😀", 63) + "abc",
	}
	path4096 := longPath(4096)
	multi4096 := rep("/"+rep("é", 127), 16) + "/" + rep("é", 7) + "a"

	tests := []struct {
		name, in, want string
	}{
		{"empty is root", "", "/"},
		{"root", "/", "/"},
		{"one component", "/a", "/a"},
		{"no leading slash", "a", "/a"},
		{"no leading slash deep", "a/b/c", "/a/b/c"},
		{"trailing slash", "/a/", "/a"},
		{"trailing slash deep", "/a/b/", "/a/b"},
		{"no leading, trailing slash", "a/b/", "/a/b"},
		{"spaces", "/My Documents/ a file .txt ", "/My Documents/ a file .txt "},
		{"only spaces", "/ /  ", "/ /  "},
		{"unicode", "/日本語/ファイル.txt", "/日本語/ファイル.txt"},
		{"greek cyrillic", "/Ελληνικά/кириллица", "/Ελληνικά/кириллица"},
		{"emoji", "/📁/🎉 party 👨‍👩‍👧.txt", "/📁/🎉 party 👨‍👩‍👧.txt"},
		{"dots that are names", "/.../.hidden/a./..b/.a.", "/.../.hidden/a./..b/.a."},
		{"backslash and colon", `/a\b/c:d`, `/a\b/c:d`},
		{"NFD to NFC", "/cafe\u0301", "/caf\u00e9"},
		{"NFD to NFC bare", "e\u0301", "/\u00e9"},
		{"NFD in several components", "/e\u0301/A\u030a/", "/\u00e9/\u00c5"},
		{"hangul jamo compose", "/\u1100\u1161\u11a8", "/\uac01"},
		{"NFC composition exclusion decomposes", "/\u0958", "/\u0915\u093c"},
		{"singleton decomposes", "/\u212b", "/\u00c5"}, // ANGSTROM SIGN
		{"combining mark first", "/a/\u0301b", "/a/\u0301b"},
		{"non-Cc format chars allowed", "/a\u200bb\u00a0c\u2028d\ufeff", "/a\u200bb\u00a0c\u2028d\ufeff"},
		{"replacement char allowed", "/\ufffd", "/\ufffd"},
		{"max rune", "/\U0010ffff", "/\U0010ffff"},
		{"component 255 ascii", "/" + max255["ascii"], "/" + max255["ascii"]},
		{"component 255 2-byte", "/" + max255["2-byte"], "/" + max255["2-byte"]},
		{"component 255 3-byte", "/" + max255["3-byte"], "/" + max255["3-byte"]},
		{"component 255 4-byte", "/" + max255["4-byte"], "/" + max255["4-byte"]},
		{"component 255 after NFC", "/" + rep("e\u0301", 127) + "a", "/" + max255["2-byte"]},
		{"path 4096", path4096, path4096},
		{"path 4096 trailing slash", path4096 + "/", path4096},
		{"path 4096 no leading slash", path4096[1:], path4096},
		{"path 4096 multi-byte", multi4096, multi4096},
		{"path 4096 after NFC", strings.ReplaceAll(multi4096, "é", "e\u0301"), multi4096},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := metapath.Clean(tt.in)
			if err != nil {
				t.Fatalf("Clean(%q) error: %v", tt.in, err)
			}
			if got != tt.want {
				t.Fatalf("Clean(%q) = %q, want %q", tt.in, got, tt.want)
			}
			again, err := metapath.Clean(got)
			if err != nil || again != got {
				t.Fatalf("Clean(Clean(%q)) = %q, %v; want %q", tt.in, again, err, got)
			}
		})
	}
}

func TestCleanLengthTestData(t *testing.T) {
	// Guard the arithmetic the length tests rely on.
	for name, n := range map[string]int{
		"2-byte 255": len(rep("é", 127) + "a"),
		"3-byte 255": len(rep("€", 85)),
		"4-byte 255": len(rep("😀", 63) + "abc"),
		"multi 4096": len(rep("/"+rep("é", 127), 16) + "/" + rep("é", 7) + "a"),
	} {
		want := 255
		if strings.HasPrefix(name, "multi") {
			want = 4096
		}
		if n != want {
			t.Errorf("%s: %d bytes", name, n)
		}
	}
}

func TestCleanRefused(t *testing.T) {
	path4097 := longPath(4097)
	multi4097 := rep("/"+rep("é", 127), 16) + "/" + rep("é", 8)

	tests := []struct {
		name, in, reason string
	}{
		{"double slash", "//", "empty component"},
		{"triple slash", "///", "empty component"},
		{"empty middle", "a//b", "empty component"},
		{"empty middle rooted", "/a//b", "empty component"},
		{"two leading slashes", "//a", "empty component"},
		{"two trailing slashes", "/a//", "empty component"},
		{"two trailing slashes unrooted", "a//", "empty component"},
		{"dot", ".", `"." is not a valid name`},
		{"rooted dot", "/.", `"." is not a valid name`},
		{"dot trailing slash", "/./", `"." is not a valid name`},
		{"dot middle", "/a/./b", `"." is not a valid name`},
		{"dotdot", "..", `".." is not a valid name`},
		{"dotdot first", "/../a", `".." is not a valid name`},
		{"dotdot last", "/a/..", `".." is not a valid name`},
		{"NUL", "/a\x00b", "contains NUL"},
		{"NUL alone", "\x00", "contains NUL"},
		{"C0 SOH", "/a\x01", "contains control character U+0001"},
		{"tab", "/a\tb", "contains control character U+0009"},
		{"newline", "/a\nb", "contains control character U+000A"},
		{"carriage return", "/a\r", "contains control character U+000D"},
		{"C0 US", "/\x1f", "contains control character U+001F"},
		{"DEL", "/a\x7f", "contains control character U+007F"},
		{"C1 first", "/a\u0080", "contains control character U+0080"},
		{"C1 NEL", "/a\u0085", "contains control character U+0085"},
		{"C1 last", "/a\u009f", "contains control character U+009F"},
		{"invalid byte", "/a\xff", "invalid UTF-8"},
		{"truncated sequence", "/a/\xc3", "invalid UTF-8"},
		{"overlong slash", "/a\xc0\xafb", "invalid UTF-8"},
		{"surrogate", "/\xed\xa0\x80", "invalid UTF-8"},
		{"beyond max rune", "/\xf4\x90\x80\x80", "invalid UTF-8"},
		{"invalid before other faults", "//\xff/..", "invalid UTF-8"},
		{"component 256 ascii", "/" + rep("a", 256), "name is 256 bytes, more than 255"},
		{"component 256 2-byte", "/" + rep("é", 128), "name is 256 bytes, more than 255"},
		{"component 256 3-byte", "/x/" + rep("€", 85) + "a", "name is 256 bytes, more than 255"},
		{"component 256 4-byte", "/" + rep("😀", 64), "name is 256 bytes, more than 255"},
		{"component 256 after NFC", "/" + rep("e\u0301", 128), "name is 256 bytes, more than 255"},
		{"component grows past 255 under NFC", "/" + rep("\u0958", 85), "name is 510 bytes, more than 255"},
		{"path 4097", path4097, "path is 4097 bytes, more than 4096"},
		{"path 4097 trailing slash", path4097 + "/", "path is 4097 bytes, more than 4096"},
		{"path 4097 multi-byte", multi4097, "path is 4097 bytes, more than 4096"},
		{"path 4097 after NFC", strings.ReplaceAll(multi4097, "é", "e\u0301"), "path is 4097 bytes, more than 4096"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := metapath.Clean(tt.in)
			if err == nil {
				t.Fatalf("Clean(%q) = %q, want error %q", tt.in, got, tt.reason)
			}
			checkError(t, err, tt.in, tt.reason)
		})
	}
}

// checkError asserts err is an *Error for path with the given reason that
// matches ErrInvalidPath.
func checkError(t *testing.T, err error, path, reason string) {
	t.Helper()
	if !errors.Is(err, metapath.ErrInvalidPath) {
		t.Errorf("errors.Is(%v, ErrInvalidPath) = false", err)
	}
	var e *metapath.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not a *metapath.Error", err, err)
	}
	if e.Path != path {
		t.Errorf("Error.Path = %q, want %q", e.Path, path)
	}
	if e.Reason != reason {
		t.Errorf("Error.Reason = %q, want %q", e.Reason, reason)
	}
}

func TestErrorMessage(t *testing.T) {
	_, err := metapath.Clean("a//b")
	if got, want := err.Error(), `invalid path "a//b": empty component`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	e := &metapath.Error{Path: "x", Reason: "why"}
	if got, want := e.Error(), `invalid path "x": why`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if e.Unwrap() != metapath.ErrInvalidPath {
		t.Errorf("Unwrap() = %v, want ErrInvalidPath", e.Unwrap())
	}
	wrapped := fmt.Errorf("rename: %w", err)
	if !errors.Is(wrapped, metapath.ErrInvalidPath) {
		t.Errorf("wrapped error does not match ErrInvalidPath")
	}
	if got, want := metapath.ErrInvalidPath.Error(), "invalid path"; got != want {
		t.Errorf("ErrInvalidPath = %q, want %q", got, want)
	}
}

func TestConstants(t *testing.T) {
	if metapath.MaxComponentBytes != 255 || metapath.MaxPathBytes != 4096 {
		t.Fatalf("limits = %d, %d", metapath.MaxComponentBytes, metapath.MaxPathBytes)
	}
}

func TestCleanName(t *testing.T) {
	valid := []struct {
		name, in, want string
	}{
		{"ascii", "report.pdf", "report.pdf"},
		{"spaces", " a b ", " a b "},
		{"unicode", "Straße", "Straße"},
		{"emoji", "🎉", "🎉"},
		{"three dots", "...", "..."},
		{"hidden", ".git", ".git"},
		{"NFD to NFC", "e\u0301", "\u00e9"},
		{"hangul", "\u1100\u1161", "\uac00"},
		{"255 bytes", rep("a", 255), rep("a", 255)},
		{"255 bytes multi-byte", rep("😀", 63) + "abc", rep("😀", 63) + "abc"},
		{"255 bytes after NFC", rep("e\u0301", 127) + "a", rep("é", 127) + "a"},
	}
	for _, tt := range valid {
		t.Run(tt.name, func(t *testing.T) {
			got, err := metapath.CleanName(tt.in)
			if err != nil {
				t.Fatalf("CleanName(%q) error: %v", tt.in, err)
			}
			if got != tt.want {
				t.Fatalf("CleanName(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}

	refused := []struct {
		name, in, reason string
	}{
		{"empty", "", "empty name"},
		{"dot", ".", `"." is not a valid name`},
		{"dotdot", "..", `".." is not a valid name`},
		{"slash", "/", `name contains "/"`},
		{"leading slash", "/a", `name contains "/"`},
		{"trailing slash", "a/", `name contains "/"`},
		{"inner slash", "a/b", `name contains "/"`},
		{"NUL", "a\x00", "contains NUL"},
		{"tab", "a\tb", "contains control character U+0009"},
		{"DEL", "\x7f", "contains control character U+007F"},
		{"C1", "\u0090", "contains control character U+0090"},
		{"invalid UTF-8", "a\xffb", "invalid UTF-8"},
		{"invalid UTF-8 slash", "\xc0\xaf", "invalid UTF-8"},
		{"256 bytes", rep("a", 256), "name is 256 bytes, more than 255"},
		{"256 bytes multi-byte", rep("€", 85) + "a", "name is 256 bytes, more than 255"},
		{"256 bytes after NFC", rep("e\u0301", 128), "name is 256 bytes, more than 255"},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			got, err := metapath.CleanName(tt.in)
			if err == nil {
				t.Fatalf("CleanName(%q) = %q, want error %q", tt.in, got, tt.reason)
			}
			checkError(t, err, tt.in, tt.reason)
		})
	}
}

func TestSplit(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"/", nil},
		{"/a", []string{"a"}},
		{"/a/b/c", []string{"a", "b", "c"}},
		{"/é/ 😀 ", []string{"é", " 😀 "}},
	}
	for _, tt := range tests {
		got := metapath.Split(tt.in)
		if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", tt.want) || (tt.want == nil) != (got == nil) {
			t.Errorf("Split(%q) = %#v, want %#v", tt.in, got, tt.want)
		}
	}
}

func TestJoin(t *testing.T) {
	tests := []struct{ parent, name, want string }{
		{"/", "a", "/a"},
		{"/a", "b", "/a/b"},
		{"/a/b", "é", "/a/b/é"},
		{"/a", "", "/a"},
		{"/", "", "/"},
	}
	for _, tt := range tests {
		if got := metapath.Join(tt.parent, tt.name); got != tt.want {
			t.Errorf("Join(%q, %q) = %q, want %q", tt.parent, tt.name, got, tt.want)
		}
	}
}

func TestParent(t *testing.T) {
	tests := []struct{ in, dir, name string }{
		{"/", "/", ""},
		{"/a", "/", "a"},
		{"/a/b", "/a", "b"},
		{"/a/b/c", "/a/b", "c"},
		{"/é/😀", "/é", "😀"},
	}
	for _, tt := range tests {
		dir, name := metapath.Parent(tt.in)
		if dir != tt.dir || name != tt.name {
			t.Errorf("Parent(%q) = %q, %q; want %q, %q", tt.in, dir, name, tt.dir, tt.name)
		}
		if tt.in != "/" {
			if got := metapath.Join(dir, name); got != tt.in {
				t.Errorf("Join(Parent(%q)) = %q", tt.in, got)
			}
		}
	}
}

func TestFold(t *testing.T) {
	equal := [][]string{
		{"Straße", "STRASSE", "strasse", "STRAẞE"},
		{"ΣΑΣ", "σας", "σασ", "Σας"},
		{"café", "CAFÉ", "cafe\u0301", "CAFE\u0301", "Cafe\u0301"},
		{"Å", "å", "A\u030a", "\u212b"}, // ANGSTROM SIGN
		{"k", "K", "\u212a"},            // KELVIN SIGN
		{"ﬀ", "ff", "FF"},
		{"", ""},
	}
	for _, group := range equal {
		want := metapath.Fold(group[0])
		for _, s := range group[1:] {
			if got := metapath.Fold(s); got != want {
				t.Errorf("Fold(%q) = %q, Fold(%q) = %q; want equal", s, got, group[0], want)
			}
		}
		if !norm.NFC.IsNormalString(want) || !utf8.ValidString(want) {
			t.Errorf("Fold(%q) = %q is not valid NFC", group[0], want)
		}
	}
	if got := metapath.Fold("Straße"); got != "strasse" {
		t.Errorf(`Fold("Straße") = %q, want "strasse"`, got)
	}
	if got := metapath.Fold("cafe\u0301"); got != "caf\u00e9" {
		t.Errorf(`Fold("cafe\u0301") = %q, want NFC "café"`, got)
	}

	distinct := [][2]string{
		{"a", "b"},
		{"é", "e"},
		{"ss", "s"},
		{"a.txt", "a.txt "},
		{"i", "ı"}, // dotless i does not fold to i without the Turkic option
	}
	for _, pair := range distinct {
		if metapath.Fold(pair[0]) == metapath.Fold(pair[1]) {
			t.Errorf("Fold(%q) == Fold(%q) = %q, want different", pair[0], pair[1], metapath.Fold(pair[0]))
		}
	}
}

func TestFoldConcurrent(t *testing.T) {
	inputs := []string{"Straße", "ΣΑΣ", "CAFE\u0301", "ÅNGSTRÖM", "Hello, World", "ﬀ", "日本語"}
	want := make([]string, len(inputs))
	for i, s := range inputs {
		want[i] = metapath.Fold(s)
	}
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 500 {
				k := (g + i) % len(inputs)
				if got := metapath.Fold(inputs[k]); got != want[k] {
					t.Errorf("Fold(%q) = %q, want %q", inputs[k], got, want[k])
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestIsAncestor(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"/", "/a", true},
		{"/", "/a/b", true},
		{"/", "/", false},
		{"/a", "/a", false},
		{"/a", "/A", false},
		{"/a", "/a/b", true},
		{"/a", "/a/b/c", true},
		{"/a/b", "/a/b/c", true},
		{"/A", "/a/b", true},
		{"/a", "/A/b", true},
		{"/Straße", "/STRASSE/x", true},
		{"/ΣΑΣ", "/σας/x", true},
		{"/café", "/CAFÉ/x", true},
		{"/a", "/ab", false},
		{"/a", "/ab/c", false},
		{"/a/b", "/a", false},
		{"/a/b", "/a/c/d", false},
		{"/x", "/a/b", false},
		{"/a/b", "/", false},
	}
	for _, tt := range tests {
		if got := metapath.IsAncestor(tt.a, tt.b); got != tt.want {
			t.Errorf("IsAncestor(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

func FuzzClean(f *testing.F) {
	seeds := []string{
		"", "/", "//", "a", "/a", "/a/", "a/b/", "/a//b", "//a", "/./a", "/a/..",
		"/...", "/.hidden", "/a b/ c ", "/cafe\u0301", "/\u1100\u1161\u11a8",
		"/\u0958", "/\u212b", "/a/\u0301b", "/📁/🎉", "/a\x00b", "/a\x7f",
		"/a\u0085", "/\xff", "/\xc0\xaf", "/\xed\xa0\x80",
		"/" + rep("a", 255), "/" + rep("a", 256), "/" + rep("e\u0301", 128),
		longPath(4096), longPath(4096) + "/", longPath(4097),
		"/a" + rep("\u0301", 40), // long run of non-starters
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		out, err := metapath.Clean(p)
		if err != nil {
			checkFuzzError(t, p, err)
			return
		}
		checkCanonical(t, p, out)
	})
}

func checkFuzzError(t *testing.T, p string, err error) {
	if !errors.Is(err, metapath.ErrInvalidPath) {
		t.Fatalf("Clean(%q) error %v does not match ErrInvalidPath", p, err)
	}
	var e *metapath.Error
	if !errors.As(err, &e) || e.Path != p || e.Reason == "" {
		t.Fatalf("Clean(%q) error %#v is not a complete *Error", p, err)
	}
}

func checkCanonical(t *testing.T, p, out string) {
	if !utf8.ValidString(p) {
		t.Fatalf("Clean accepted invalid UTF-8 %q", p)
	}
	if !utf8.ValidString(out) || !norm.NFC.IsNormalString(out) {
		t.Fatalf("Clean(%q) = %q is not valid NFC UTF-8", p, out)
	}
	if len(out) > metapath.MaxPathBytes {
		t.Fatalf("Clean(%q) = %d bytes, over limit", p, len(out))
	}
	if !strings.HasPrefix(out, "/") || (out != "/" && strings.HasSuffix(out, "/")) {
		t.Fatalf("Clean(%q) = %q has bad slashes", p, out)
	}
	again, err := metapath.Clean(out)
	if err != nil || again != out {
		t.Fatalf("Clean(Clean(%q)) = %q, %v; want %q", p, again, err, out)
	}
	for _, c := range metapath.Split(out) {
		if n, err := metapath.CleanName(c); err != nil || n != c || len(c) > metapath.MaxComponentBytes {
			t.Fatalf("Clean(%q) = %q has bad component %q: %v", p, out, c, err)
		}
	}
	if out != "/" {
		dir, name := metapath.Parent(out)
		if metapath.Join(dir, name) != out || !metapath.IsAncestor(dir, out) {
			t.Fatalf("Clean(%q) = %q: Parent gives %q, %q", p, out, dir, name)
		}
	}
}

func TestFoldCherokee(t *testing.T) {
	upper, lower := "\u13A0\u13F0", "\uAB70\u13F8"
	if metapath.Fold(upper) != metapath.Fold(lower) {
		t.Fatalf("Fold(%q)=%q, Fold(%q)=%q: Cherokee case must collide", upper, metapath.Fold(upper), lower, metapath.Fold(lower))
	}
	if metapath.Fold(metapath.Fold(lower)) != metapath.Fold(lower) {
		t.Fatalf("Fold is not idempotent on Cherokee")
	}
}
