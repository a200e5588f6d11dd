package semantic

import "strings"

// Covers reports whether every subject matched by sub is also matched by
// pattern, using NATS wildcards: "*" matches one token, a final ">" one or
// more. It is how a producer's or consumer's subjects are checked to lie
// inside their Topic's before the server is asked.
func Covers(pattern, sub string) bool {
	p := strings.Split(pattern, ".")
	s := strings.Split(sub, ".")
	for i, pt := range p {
		if pt == ">" {
			return len(s) > i
		}
		if i >= len(s) {
			return false
		}
		switch {
		case s[i] == ">":
			return false // sub matches arbitrarily many tokens, pattern does not
		case pt == "*":
		case pt != s[i]:
			return false
		}
	}
	return len(s) == len(p)
}

// CoveredByAny reports whether some pattern covers sub.
func CoveredByAny(patterns []string, sub string) bool {
	for _, p := range patterns {
		if Covers(p, sub) {
			return true
		}
	}
	return false
}

// Overlap reports whether some subject matches both patterns: the server
// refuses a stream whose subjects overlap another stream's, and hubflow
// uses this to name the stream that holds them.
func Overlap(a, b string) bool {
	x, y := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(x) && i < len(y); i++ {
		if x[i] == ">" || y[i] == ">" {
			return true // the other has a token here, and ">" takes it and the rest
		}
		if x[i] != "*" && y[i] != "*" && x[i] != y[i] {
			return false
		}
	}
	return len(x) == len(y)
}

// OverlapsAny returns the first pattern of others that overlaps one of
// subjects, and whether there is one.
func OverlapsAny(subjects, others []string) (string, bool) {
	for _, s := range subjects {
		for _, o := range others {
			if Overlap(s, o) {
				return o, true
			}
		}
	}
	return "", false
}
