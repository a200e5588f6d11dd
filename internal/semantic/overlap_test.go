package semantic

import "testing"

func TestOverlap(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"orders", "orders", true},
		{"orders", "payments", false},
		{"orders.*", "orders.eu", true},
		{"orders.*", "orders", false},
		{"orders.>", "orders", false}, // ">" needs at least one more token
		{"orders.>", "orders.eu.1", true},
		{"orders.*.eu", "orders.1.us", false},
		{"orders.*.eu", "orders.>", true},
		{"*.eu", "orders.*", true},
		{">", "anything.at.all", true},
		{"a.b", "a.b.c", false},
		{"a.*", "a.b.c", false},
	}
	for _, tc := range tests {
		if got := Overlap(tc.a, tc.b); got != tc.want {
			t.Errorf("Overlap(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
		if got := Overlap(tc.b, tc.a); got != tc.want {
			t.Errorf("Overlap(%q, %q) = %v, want %v (not symmetric)", tc.b, tc.a, got, tc.want)
		}
	}
	if got, ok := OverlapsAny([]string{"x", "orders.eu"}, []string{"payments", "orders.*"}); !ok || got != "orders.*" {
		t.Errorf("OverlapsAny = %q, %v; want orders.*, true", got, ok)
	}
}
