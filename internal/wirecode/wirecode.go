// Package wirecode maps a package's sentinel errors to its stable wire codes
// and back.
package wirecode

import "errors"

// Pair ties one wire code to its sentinel error.
type Pair[C ~string] struct {
	Code C
	Err  error
}

// Table is a package's code ↔ sentinel list, searched in order.
type Table[C ~string] []Pair[C]

// CodeOf returns the code of the first sentinel err wraps (errors.Is):
// the zero code for nil, internal for an error that wraps none.
func (t Table[C]) CodeOf(err error, internal C) C {
	if err == nil {
		var ok C
		return ok
	}
	for _, p := range t {
		if errors.Is(err, p.Err) {
			return p.Code
		}
	}
	return internal
}

// Sentinel returns the sentinel of code c, or nil if the table has none.
func (t Table[C]) Sentinel(c C) error {
	for _, p := range t {
		if p.Code == c {
			return p.Err
		}
	}
	return nil
}
