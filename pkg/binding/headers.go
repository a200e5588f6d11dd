package binding

import (
	"strconv"
	"time"
)

// IdempotencyKeyHeader, when a message carries it, is the message's
// idempotency key for consumers, in place of its Nats-Msg-Id. hubflow sets
// it when it replays a dead letter into its source Topic: the replay is a
// new message to the stream (a Nats-Msg-Id of its own, so the stream's
// duplicate window does not swallow it) yet the same message to every
// consumer, so one that processed the original skips the replay.
const IdempotencyKeyHeader = "Hubflow-Idempotency-Key"

// msgIDHeader is JetStream's message id header.
const msgIDHeader = "Nats-Msg-Id"

// IdempotencyKey is a stored message's key for consumers, the same on
// every redelivery: its Hubflow-Idempotency-Key header, else its
// Nats-Msg-Id, else "<stream>:<stream sequence>:<stored time, Unix ns>" (the
// stored time tells a recreated stream's sequence 1 from the old one's).
// Every hubflow component keys messages by it: the client library, the
// dead-letter mover, the gateway's push delivery (docs/protocol.md).
// header is a nats.Header.
func IdempotencyKey(header map[string][]string, stream string, seq uint64, stored time.Time) string {
	for _, name := range []string{IdempotencyKeyHeader, msgIDHeader} {
		if v := header[name]; len(v) > 0 && v[0] != "" {
			return v[0]
		}
	}
	key := make([]byte, 0, len(stream)+42)
	key = append(append(key, stream...), ':')
	key = append(strconv.AppendUint(key, seq, 10), ':')
	return string(strconv.AppendInt(key, stored.UnixNano(), 10))
}
