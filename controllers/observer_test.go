package controllers

import "testing"

func TestCoarse(t *testing.T) {
	for in, want := range map[uint64]int64{0: 0, 7: 7, 99: 99, 100: 100, 1234: 1200, 98765: 98000, 1_000_001: 1_000_000} {
		if got := coarse(in); got != want {
			t.Errorf("coarse(%d) = %d, want %d", in, got, want)
		}
	}
}
