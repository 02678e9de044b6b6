// Package ignore decides which paths under a sync root the sync client skips.
//
// A Matcher combines the built-in rules below with the rules of the root's
// .cofferignore file, which uses git's gitignore syntax for a single file at
// the root of the tree:
//
//   - Blank lines match nothing; a line starting with "#" is a comment.
//     "\#" starts a pattern with a literal "#".
//   - Trailing spaces are trimmed unless escaped with a backslash ("a\ ").
//     Leading spaces are part of the pattern. "\r\n" line ends and a UTF-8
//     byte order mark are accepted; patterns are normalised to NFC.
//   - "!" negates a pattern: a path it matches is included again. The last
//     matching line wins. "\!" starts a pattern with a literal "!".
//   - A trailing "/" makes a pattern match folders only.
//   - A pattern with a "/" at its start or in its middle is anchored to the
//     root and matched against the whole relative path ("/build",
//     "doc/*.txt"). Otherwise it matches the last element of a path at any
//     depth ("*.o", "node_modules/").
//   - "*" matches any run of characters, "?" one character, and "[...]" one
//     character of a set: ranges ("[a-z]"), negation ("[!a-z]" or "[^a-z]"),
//     POSIX classes ("[[:digit:]]", Unicode-aware) and "\" escapes. None of
//     them matches "/". A "\" makes the next character literal.
//   - "**" as a whole path element matches across folders: "**/foo" matches
//     foo at any depth, "foo/**" everything inside foo (not foo itself), and
//     "a/**/b" zero or more folders between a and b. Other runs of "*" act
//     as a single "*".
//   - Everything inside an ignored folder is ignored, and a "!" rule cannot
//     include a path again if a folder above it is ignored.
//
// Matching is case-sensitive and by Unicode character ("?" matches "é").
// Git never rejects a pattern; Parse does, with ErrBadPattern, for an
// unterminated "[" set, an unknown "[:class:]" or a trailing unescaped "\",
// which git would silently never match.
//
// Built-in rules apply to every Matcher. ".coffer" at the root (the sync
// engine's state folder) and everything in it is always ignored; no "!"
// rule can include it. These patterns for editor, OS and download leftovers
// match at any depth, as if they came before the file's own lines, so a "!"
// line can include such a path again, as in git:
//
//	*~ .*.swp .*.swo .*.swx .#* #*#   editor backups, swap and lock files
//	*.tmp                             temporary files
//	~$*                               Microsoft Office lock files
//	.~lock.*#                         LibreOffice lock files
//	.DS_Store Thumbs.db desktop.ini   macOS and Windows folder metadata
//	.coffer-tmp-*                     the engine's own download temp files
//	*.part *.crdownload               browsers' partial downloads
//
// The .cofferignore file itself is not ignored: it syncs like any file.
//
// A Matcher is immutable and safe for concurrent use.
package ignore
