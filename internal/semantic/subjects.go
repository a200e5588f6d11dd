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
