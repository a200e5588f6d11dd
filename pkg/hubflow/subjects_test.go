package hubflow

import "testing"

func TestSubjectMatches(t *testing.T) {
	for _, tc := range []struct {
		pattern, subject string
		want             bool
	}{
		{"a.b", "a.b", true},
		{"a.b", "a.c", false},
		{"a.b", "a.b.c", false},
		{"a.b.c", "a.b", false},
		{"a.*", "a.b", true},
		{"a.*", "a.b.c", false},
		{"a.>", "a.b", true},
		{"a.>", "a.b.c", true},
		{"a.>", "a", false},
		{">", "a", true},
		{"*.b.>", "x.b.y", true},
		{"*.b.>", "x.c.y", false},
	} {
		if got := subjectMatches(tc.pattern, tc.subject); got != tc.want {
			t.Errorf("subjectMatches(%q, %q) = %v, want %v", tc.pattern, tc.subject, got, tc.want)
		}
	}
}

func TestFirstLiteral(t *testing.T) {
	if got := firstLiteral([]string{"ns.t.>", "ns.t.*", "ns.t", "ns.u"}); got != "ns.t" {
		t.Errorf("firstLiteral = %q, want ns.t", got)
	}
	if got := firstLiteral([]string{"ns.t.>"}); got != "" {
		t.Errorf("firstLiteral = %q, want none", got)
	}
	for _, s := range []string{"", "a..b", "a.*", "a.>", "a b"} {
		if literal(s) {
			t.Errorf("literal(%q) = true", s)
		}
	}
}
