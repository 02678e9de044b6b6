package gateway

import "testing"

func TestUploadBudget(t *testing.T) {
	b := &budget{max: 100}
	steps := []struct {
		take int64 // > 0 take, < 0 give back
		ok   bool
	}{
		{60, true},
		{50, false}, // 110 > 100
		{40, true},  // exactly 100
		{1, false},
		{-60, true},
		{50, true},
		{-40, true},
		{-50, true},
		{500, true}, // more than the whole budget: one body alone still streams
		{1, false},
	}
	for i, st := range steps {
		if st.take < 0 {
			b.give(-st.take)
			continue
		}
		if got := b.take(st.take); got != st.ok {
			t.Fatalf("step %d: take(%d) = %v, want %v (used %d)", i, st.take, got, st.ok, b.used)
		}
	}
}
