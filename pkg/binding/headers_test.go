package binding

import (
	"testing"
	"time"
)

// The key every hubflow component keys a message by: the replay header,
// else the message id, else where and when the stream stored it.
func TestIdempotencyKey(t *testing.T) {
	stored := time.Unix(0, 1234)
	for _, tc := range []struct {
		header map[string][]string
		want   string
	}{
		{nil, "s:5:1234"},
		{map[string][]string{"Nats-Msg-Id": {""}}, "s:5:1234"},
		{map[string][]string{"Nats-Msg-Id": {"order-1"}}, "order-1"},
		{map[string][]string{"Nats-Msg-Id": {"replay-1"}, IdempotencyKeyHeader: {"order-1"}}, "order-1"},
	} {
		if got := IdempotencyKey(tc.header, "s", 5, stored); got != tc.want {
			t.Errorf("%v: key %q, want %q", tc.header, got, tc.want)
		}
	}
}
