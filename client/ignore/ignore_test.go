package ignore

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// ignoreCase is one row of the table: with rules as the .cofferignore
// content, is path (a folder if dir) ignored? notGit, when set, says why the
// row is left out of the comparison with the git binary (gitcompat_test.go).
type ignoreCase struct {
	rules  string
	path   string
	dir    bool
	want   bool
	notGit string
}

// ignoreCases follows gitignore(5) for one file at the root; every row
// that git can judge is also checked against git itself.
var ignoreCases = []ignoreCase{
	// Blank lines and comments.
	{rules: "\n\n# foo\n", path: "# foo", want: false},
	{rules: "#foo", path: "#foo", want: false},
	{rules: `\#foo`, path: "#foo", want: true},
	{rules: "   \n\t\n", path: "a", want: false},
	{rules: "  # not a comment", path: "  # not a comment", want: true},
	// Trailing spaces are trimmed unless escaped; leading ones count.
	{rules: "foo   ", path: "foo", want: true},
	{rules: "foo   ", path: "foo   ", want: false},
	{rules: `foo\ `, path: "foo ", want: true},
	{rules: `foo\ `, path: "foo", want: false},
	{rules: `foo\  `, path: "foo ", want: true},
	{rules: " foo", path: "foo", want: false},
	{rules: " foo", path: " foo", want: true},
	{rules: "foo\t", path: "foo\t", want: true},
	// Line ends and byte order mark.
	{rules: "foo\r\nbar\r\n", path: "bar", want: true},
	{rules: "foo\r\nbar", path: "foo", want: true},
	{rules: "\ufefffoo", path: "foo", want: true},
	// Negation: the last matching line wins.
	{rules: "*.log\n!keep.log", path: "keep.log", want: false},
	{rules: "*.log\n!keep.log", path: "a.log", want: true},
	{rules: "!keep.log\n*.log", path: "keep.log", want: true},
	{rules: "!foo", path: "foo", want: false},
	{rules: `\!important`, path: "!important", want: true},
	{rules: `\!important`, path: "important", want: false},
	// A trailing "/" matches folders only, at any depth.
	{rules: "build/", path: "build", dir: true, want: true},
	{rules: "build/", path: "build", want: false},
	{rules: "build/", path: "src/build", dir: true, want: true},
	{rules: "build", path: "build", dir: true, want: true},
	{rules: "build", path: "src/build", want: true},
	// Inside an ignored folder, and no re-including below it.
	{rules: "build/", path: "build/x/y.o", want: true},
	{rules: "build/", path: "src/build/a.o", want: true},
	{rules: "build/\n!build/keep", path: "build/keep", want: true},
	{rules: "build/\n!keep", path: "build/keep", want: true},
	{rules: "build/*\n!build/keep", path: "build/keep", want: false},
	{rules: "build/*\n!build/keep", path: "build/other", want: true},
	{rules: "build/*\n!build/keep", path: "build", dir: true, want: false},
	{rules: "build/*\n!build/keep", path: "build/keep/deep", want: false},
	{rules: "*\n!*/\n!*.go", path: "src/a.go", want: false},
	{rules: "*\n!*/\n!*.go", path: "src/a.txt", want: true},
	{rules: "*\n!*.go", path: "src/a.go", want: true},
	// Anchoring: a leading or middle "/" ties the pattern to the root.
	{rules: "/foo", path: "foo", want: true},
	{rules: "/foo", path: "a/foo", want: false},
	{rules: "/build/", path: "src/build", dir: true, want: false},
	{rules: "/build/", path: "build", dir: true, want: true},
	{rules: "doc/frotz", path: "doc/frotz", want: true},
	{rules: "doc/frotz", path: "a/doc/frotz", want: false},
	{rules: "doc/frotz/", path: "doc/frotz", dir: true, want: true},
	{rules: "doc/frotz/", path: "a/doc/frotz", dir: true, want: false},
	{rules: "doc/frotz", path: "doc/frotz/x/y", want: true},
	{rules: "frotz", path: "a/b/frotz", want: true},
	{rules: "doc/*.txt", path: "doc/a.txt", want: true},
	{rules: "doc/*.txt", path: "doc/sub/a.txt", want: false},
	// "*", "?" and sets never cross "/".
	{rules: "*.o", path: "a/b/c.o", want: true},
	{rules: "*.o", path: "c.o.txt", want: false},
	{rules: "*.txt", path: ".txt", want: true},
	{rules: "a?c", path: "abc", want: true},
	{rules: "a?c", path: "ac", want: false},
	{rules: "x/a?c", path: "x/a/c", want: false},
	{rules: "/a*c", path: "abbc", want: true},
	{rules: "/a*c", path: "ab/c", want: false},
	{rules: "a*b*c", path: "aXbYbZc", want: true},
	{rules: "a*b*c", path: "aXbYbZ", want: false},
	{rules: "[abc].txt", path: "b.txt", want: true},
	{rules: "[abc].txt", path: "d.txt", want: false},
	{rules: "[a-c]x", path: "bx", want: true},
	{rules: "[a-c]x", path: "dx", want: false},
	{rules: "[!a-c]x", path: "dx", want: true},
	{rules: "[!a-c]x", path: "ax", want: false},
	{rules: "[^a-c]x", path: "dx", want: true},
	{rules: "[^a-c]x", path: "cx", want: false},
	{rules: "[]]x", path: "]x", want: true},
	{rules: "[!]]x", path: "]x", want: false},
	{rules: "[a-]x", path: "-x", want: true},
	{rules: "[-a]x", path: "-x", want: true},
	{rules: `[\]]x`, path: "]x", want: true},
	{rules: "[[:digit:]]*", path: "7up", want: true},
	{rules: "[[:digit:]]*", path: "up", want: false},
	{rules: "[[:upper:][:digit:]]", path: "Q", want: true},
	{rules: "[[:]x", path: ":x", want: true},
	{rules: "[[:]x", path: "[x", want: true},
	{rules: "[[:a]x", path: "ax", want: true},
	{rules: "[[:a]x", path: "bx", want: false},
	{rules: "x[/]y", path: "x/y", want: false},
	{rules: `\*`, path: "*", want: true},
	{rules: `\*`, path: "a", want: false},
	{rules: `\?`, path: "a", want: false},
	{rules: `\[a]`, path: "[a]", want: true},
	{rules: `foo\\`, path: `foo\`, want: true},
	// "**" leading, trailing and in the middle.
	{rules: "**/foo", path: "foo", want: true},
	{rules: "**/foo", path: "a/b/foo", want: true},
	{rules: "**/foo/bar", path: "x/foo/bar", want: true},
	{rules: "**/foo/bar", path: "foo/bar", want: true},
	{rules: "**/foo/bar", path: "foo/x/bar", want: false},
	{rules: "abc/**", path: "abc/x", want: true},
	{rules: "abc/**", path: "abc/x/y", want: true},
	{rules: "abc/**", path: "abc", dir: true, want: false},
	{rules: "abc/**", path: "x/abc/y", want: false},
	{rules: "a/**/b", path: "a/b", want: true},
	{rules: "a/**/b", path: "a/x/b", want: true},
	{rules: "a/**/b", path: "a/x/y/b", want: true},
	{rules: "a/**/b", path: "a/xb", want: false},
	{rules: "a/**/b", path: "x/a/b", want: false},
	{rules: "a/**/b/", path: "a/x/b", want: false},
	{rules: "a/**/b/", path: "a/x/b", dir: true, want: true},
	{rules: "a/**/b/**/c", path: "a/1/b/2/3/c", want: true},
	{rules: "a/***/b", path: "a/x/y/b", want: true},
	{rules: "/**", path: "anything/at/all", want: true},
	{rules: "**", path: "x/y", want: true},
	{rules: "foo**bar", path: "fooxbar", want: true},
	{rules: "foo**bar", path: "foo/x/bar", want: false},
	{rules: "a/**b", path: "a/xb", want: true},
	{rules: "a/**b", path: "a/x/b", want: false},
	{rules: "a**/b", path: "axx/y/b", want: false, notGit: "git's literal-prefix shortcut treats a** as **, against its docs"},
	// Case-sensitive.
	{rules: "*.TXT", path: "a.txt", want: false},
	{rules: "Makefile", path: "makefile", want: false},
	// Characters, not bytes; patterns normalised to NFC.
	{rules: "caf?", path: "café", want: true, notGit: "git's ? matches one byte"},
	{rules: "[é]", path: "é", want: true, notGit: "git's sets hold bytes"},
	{rules: "cafe\u0301", path: "caf\u00e9", want: true, notGit: "git compares bytes"},
	// Built-ins.
	{rules: "", path: "notes.txt~", want: true},
	{rules: "", path: "a/.notes.txt.swp", want: true},
	{rules: "", path: ".x.swo", want: true},
	{rules: "", path: ".x.swx", want: true},
	{rules: "", path: "x.swp", want: false},
	{rules: "", path: "a/b.tmp", want: true},
	{rules: "", path: ".#notes.txt", want: true},
	{rules: "", path: "#notes.txt#", want: true},
	{rules: "", path: "#notes.txt", want: false},
	{rules: "", path: "docs/~$report.docx", want: true},
	{rules: "", path: ".~lock.report.odt#", want: true},
	{rules: "", path: "a/.DS_Store", want: true},
	{rules: "", path: "Thumbs.db", want: true},
	{rules: "", path: "desktop.ini", want: true},
	{rules: "", path: "x/.coffer-tmp-1234", want: true},
	{rules: "", path: "video.mp4.part", want: true},
	{rules: "", path: "setup.exe.crdownload", want: true},
	{rules: "", path: ".cofferignore", want: false},
	{rules: "", path: "report.docx", want: false},
	{rules: "", path: "scratch.tmp", dir: true, want: true},
	{rules: "", path: "scratch.tmp/inner.txt", want: true},
	{rules: "!*.tmp", path: "a.tmp", want: false},
	{rules: "!.DS_Store", path: "sub/.DS_Store", want: false},
	{rules: "!Thumbs.db\nThumbs.db", path: "Thumbs.db", want: true},
	{rules: "", path: ".coffer", dir: true, want: true, notGit: "the state folder is not a pattern"},
	{rules: "", path: ".coffer/state.db", want: true, notGit: "the state folder is not a pattern"},
	{rules: "!.coffer\n!.coffer/\n!.coffer/**", path: ".coffer/state.db", want: true, notGit: "the state folder is not a pattern"},
	{rules: "", path: "sub/.coffer", dir: true, want: false},
	{rules: "", path: ".coffer2", want: false},
}

func TestIgnored(t *testing.T) {
	if len(ignoreCases) < 40 {
		t.Fatalf("only %d cases", len(ignoreCases))
	}
	for _, tc := range ignoreCases {
		m, err := Parse(strings.NewReader(tc.rules))
		if err != nil {
			t.Fatalf("Parse(%q): %v", tc.rules, err)
		}
		if got := m.Ignored(tc.path, tc.dir); got != tc.want {
			t.Errorf("rules %q: Ignored(%q, dir=%v) = %v, want %v", tc.rules, tc.path, tc.dir, got, tc.want)
		}
	}
}

func TestDefault(t *testing.T) {
	empty, err := Parse(strings.NewReader(""))
	if err != nil {
		t.Fatal(err)
	}
	var zero Matcher
	var nilM *Matcher
	for _, tc := range ignoreCases {
		if tc.rules != "" {
			continue
		}
		for name, m := range map[string]*Matcher{"Default": Default(), "Parse(empty)": empty, "zero": &zero, "nil": nilM} {
			if got := m.Ignored(tc.path, tc.dir); got != tc.want {
				t.Errorf("%s.Ignored(%q, dir=%v) = %v, want %v", name, tc.path, tc.dir, got, tc.want)
			}
		}
	}
	for _, root := range []string{"", "."} {
		if Default().Ignored(root, true) {
			t.Errorf("root %q ignored", root)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		rules  string
		line   int
		reason string
	}{
		{"ok\n\n[abc", 3, "unterminated"},
		{"a[", 1, "unterminated"},
		{"[]", 1, "unterminated"},
		{"# c\n!x[!", 2, "unterminated"},
		{"x[a-", 1, "unterminated"},
		{`x[\`, 1, "unterminated"},
		{"[[:alpha:]", 1, "unterminated"},
		{"[[:alpha", 1, "unterminated"},
		{"a\r\nb\r\n[[:nope:]]", 3, "unknown class"},
		{"[[::]]", 1, "unknown class"},
		{`foo\`, 1, "trailing"},
		{"a\nb\nc\nd\n" + `e\`, 5, "trailing"},
	} {
		m, err := Parse(strings.NewReader(tc.rules))
		if err == nil {
			t.Errorf("Parse(%q) = %v, nil; want an error", tc.rules, m)
			continue
		}
		if !errors.Is(err, ErrBadPattern) {
			t.Errorf("Parse(%q): %v is not ErrBadPattern", tc.rules, err)
		}
		var pe *PatternError
		if !errors.As(err, &pe) || pe.Line != tc.line {
			t.Errorf("Parse(%q): %v, want a *PatternError on line %d", tc.rules, err, tc.line)
			continue
		}
		if !strings.Contains(err.Error(), fmt.Sprintf("line %d", tc.line)) || !strings.Contains(pe.Reason, tc.reason) {
			t.Errorf("Parse(%q): message %q, want line %d and %q", tc.rules, err, tc.line, tc.reason)
		}
	}
}

type failingReader struct{}

var errRead = errors.New("disk on fire")

func (failingReader) Read([]byte) (int, error) { return 0, errRead }

func TestParseReadError(t *testing.T) {
	_, err := Parse(failingReader{})
	if !errors.Is(err, errRead) || errors.Is(err, ErrBadPattern) {
		t.Fatalf("Parse(failing reader) = %v, want the read error and not ErrBadPattern", err)
	}
}

// TestBuiltinPatternsCompile guards the escaping of the built-in list
// (e.g. "#*#" must not be read as a comment).
func TestBuiltinPatternsCompile(t *testing.T) {
	want := strings.Count(builtinPatterns, "\n")
	if len(builtinRules) != want {
		t.Fatalf("%d built-in rules compiled, want %d", len(builtinRules), want)
	}
}

func TestLongPathsAndPathologicalPatterns(t *testing.T) {
	m, err := Parse(strings.NewReader(strings.Repeat("*a", 30) + "b\n" + strings.Repeat("**/x/", 20) + "y\n"))
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("a", 5000)
	if m.Ignored(long, false) {
		t.Errorf("Ignored(a*5000) = true")
	}
	if !m.Ignored(long+"b", false) {
		t.Errorf("Ignored(a*5000+b) = false")
	}
	deep := strings.Repeat("x/", 300)
	if m.Ignored(deep+"z", false) {
		t.Errorf("Ignored(x/*300 z) = true")
	}
	if !m.Ignored(deep+"y", false) {
		t.Errorf("Ignored(x/*300 y) = false")
	}
}

// FuzzIgnored checks that no rules and path make Ignored panic, and that
// what is inside an ignored folder is ignored.
func FuzzIgnored(f *testing.F) {
	for _, tc := range ignoreCases {
		f.Add(tc.rules, tc.path, tc.dir)
	}
	f.Add("a/**/b/**", "a/b/c/d", false)
	f.Add("[[:x", "\xff/\xc3", true)
	f.Fuzz(func(t *testing.T, rules, path string, dir bool) {
		m, err := Parse(strings.NewReader(rules))
		if err != nil {
			if !errors.Is(err, ErrBadPattern) {
				t.Fatalf("Parse(%q): %v is not ErrBadPattern", rules, err)
			}
			return
		}
		got := m.Ignored(path, dir)
		if i := strings.LastIndexByte(path, '/'); i > 0 && m.Ignored(path[:i], true) && !got {
			t.Fatalf("rules %q: folder %q ignored but %q not", rules, path[:i], path)
		}
		if (path == ".coffer" || strings.HasPrefix(path, ".coffer/")) && !got {
			t.Fatalf("rules %q: %q not ignored", rules, path)
		}
	})
}

func BenchmarkIgnored(b *testing.B) {
	const rules = `# a typical project
*.o
*.a
*.so
*.log
!important.log
/build/
/dist/
node_modules/
.git/
.idea/
.vscode/
__pycache__/
*.py[cod]
target/
vendor/**/testdata/
docs/_site/
**/cache/**
coverage.*
/tmp/
*.bak
`
	m, err := Parse(strings.NewReader(rules))
	if err != nil {
		b.Fatal(err)
	}
	paths := []struct {
		p   string
		dir bool
	}{
		{"src/main.go", false},
		{"src/internal/sync/engine.go", false},
		{"docs/guide/index.md", false},
		{"photos/2024/holiday/IMG_0001.JPG", false},
		{"build/out.bin", false},
		{"web/node_modules/react/index.js", false},
		{"app/__pycache__/mod.cpython-312.pyc", false},
		{"logs/important.log", false},
		{"a/b/c/d/e/f/g/h.txt", false},
		{"src/internal", true},
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		p := paths[i%len(paths)]
		m.Ignored(p.p, p.dir)
	}
}
