package metapath

import (
	"strings"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// Fold returns the key under which names are compared case-insensitively:
// NFC(Unicode full case folding of NFC(name)). Two names collide in a folder
// iff Fold gives the same string. Fold is safe for concurrent use.
//
// Cherokee is folded to its upper-case letters, as Unicode's CaseFolding.txt
// says: golang.org/x/text swaps the two cases of Cherokee instead, which
// would let two names differing only by Cherokee case coexist.
func Fold(name string) string {
	// A cases.Caser is stateful, so each call gets its own.
	folded := cases.Fold().String(norm.NFC.String(name))
	return norm.NFC.String(strings.Map(cherokeeUpper, folded))
}

// cherokeeUpper maps Cherokee small letters to their capitals.
func cherokeeUpper(r rune) rune {
	switch {
	case r >= 0xAB70 && r <= 0xABBF:
		return r - 0xAB70 + 0x13A0
	case r >= 0x13F8 && r <= 0x13FD:
		return r - 0x13F8 + 0x13F0
	}
	return r
}
