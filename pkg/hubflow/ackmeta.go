package hubflow

import (
	"strconv"
	"strings"
	"time"
)

// ackMeta reads what a Delivery needs from a message's ack subject, as
// jetstream.Msg.Metadata does but without allocating: this runs for every
// message, and on a small machine the consumer shares its cores (and, in
// the benchmarks, its garbage collector) with the server. It reports false
// for a subject it does not know or a number it cannot read; the caller
// then asks Metadata.
//
//	v1: $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<time>.<pending>
//	v2: $JS.ACK.<domain>.<account hash>.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<time>.<pending>[.<more>]
func ackMeta(reply string) (stream string, seq, delivered uint64, published time.Time, ok bool) {
	rest, found := strings.CutPrefix(reply, "$JS.ACK.")
	if !found {
		return "", 0, 0, time.Time{}, false
	}
	var tokens [7]string // stream … time
	switch n := strings.Count(rest, ".") + 1; {
	case n == 7: // v1
	case n >= 9: // v2: skip the domain and the account hash
		_, rest, _ = strings.Cut(rest, ".")
		_, rest, _ = strings.Cut(rest, ".")
	default:
		return "", 0, 0, time.Time{}, false
	}
	for i := range tokens {
		tokens[i], rest, _ = strings.Cut(rest, ".")
	}
	var err [3]error
	var ts int64
	delivered, err[0] = strconv.ParseUint(tokens[2], 10, 64)
	seq, err[1] = strconv.ParseUint(tokens[3], 10, 64)
	ts, err[2] = strconv.ParseInt(tokens[5], 10, 64)
	if err[0] != nil || err[1] != nil || err[2] != nil || tokens[0] == "" {
		return "", 0, 0, time.Time{}, false
	}
	return tokens[0], seq, delivered, time.Unix(0, ts), true
}
