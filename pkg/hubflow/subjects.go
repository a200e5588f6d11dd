package hubflow

import "strings"

// subjectMatches reports whether the literal subject falls under pattern,
// where "*" matches one token and a final ">" one or more.
func subjectMatches(pattern, subject string) bool {
	for {
		pt, prest, pmore := strings.Cut(pattern, ".")
		st, srest, smore := strings.Cut(subject, ".")
		switch {
		case pt == ">":
			return true // ">" needs at least one token, which st is
		case pt != "*" && pt != st:
			return false
		case !pmore || !smore:
			return pmore == smore
		}
		pattern, subject = prest, srest
	}
}

// literal reports whether s names one subject: no wildcard token, no empty
// token, no white space.
func literal(s string) bool {
	if s == "" {
		return false
	}
	for tok := range strings.SplitSeq(s, ".") {
		if tok == "" || tok == "*" || tok == ">" || strings.ContainsAny(tok, " \t\r\n") {
			return false
		}
	}
	return true
}

// firstLiteral is the default subject of a producer binding: the first of
// its subjects that names a single subject.
func firstLiteral(subjects []string) string {
	for _, s := range subjects {
		if literal(s) {
			return s
		}
	}
	return ""
}
