package ignore

// builtinPatterns are the built-in rules every Matcher applies before the
// file's own lines (see the package doc). ".coffer" is handled apart
// because no "!" line may include it.
const builtinPatterns = `*~
.*.swp
.*.swo
.*.swx
*.tmp
.#*
\#*#
~$*
.~lock.*#
.DS_Store
Thumbs.db
desktop.ini
.coffer-tmp-*
*.part
*.crdownload
`

var builtinRules = mustParseRules(builtinPatterns)

func mustParseRules(s string) []rule {
	rules, err := parseRules([]byte(s))
	if err != nil {
		panic("ignore: bad built-in rule: " + err.Error())
	}
	return rules
}
