package deadletter

import (
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/hubflow/hubflow/pkg/binding"
)

func TestParseAdvisory(t *testing.T) {
	at := time.Date(2026, 12, 7, 8, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		subject, body string
		want          Advisory
		err           string
	}{
		{subject: "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.shop_orders.billing",
			body: `{"type":"io.nats.jetstream.advisory.v1.max_deliver","id":"x","timestamp":"2026-12-07T08:00:00Z","stream":"shop_orders","consumer":"billing","stream_seq":7,"deliveries":3}`,
			want: Advisory{Reason: ReasonMaxDeliveries, Stream: "shop_orders", Consumer: "billing", StreamSeq: 7, Deliveries: 3, Time: at}},
		{subject: "$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.shop_orders.billing",
			body: `{"type":"io.nats.jetstream.advisory.v1.terminated","timestamp":"2026-12-07T08:00:00Z","stream":"shop_orders","consumer":"billing","consumer_seq":9,"stream_seq":8,"deliveries":1,"reason":"bad amount"}`,
			want: Advisory{Reason: ReasonTerminated, Stream: "shop_orders", Consumer: "billing", StreamSeq: 8, Deliveries: 1, Error: "bad amount", Time: at}},
		{subject: "$JS.EVENT.ADVISORY.CONSUMER.DELETED.s.c", body: `{}`, err: "not a dead-letter advisory"},
		{subject: "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.s.c", body: `{"stream":"s"}`, err: "names no stream, durable or sequence"},
		{subject: "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.s.c", body: `not json`, err: "invalid character"},
	} {
		got, err := ParseAdvisory(tc.subject, []byte(tc.body))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s %s: error %v, want one containing %q", tc.subject, tc.body, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: got %+v, %v; want %+v", tc.subject, got, err, tc.want)
		}
	}
}

func TestSubject(t *testing.T) {
	got, err := Subject([]string{"shop.dead", "shop.dead.>"}, "shop_orders", "billing")
	if err != nil || got != "shop.dead.shop_orders.billing" {
		t.Errorf("got %q, %v", got, err)
	}
	for _, subjects := range [][]string{{"shop.dead"}, {"shop.*.>"}, {"shop.dead.*"}} {
		if _, err := Subject(subjects, "s", "d"); err != ErrNoWildcardSubject {
			t.Errorf("%v: error %v, want ErrNoWildcardSubject", subjects, err)
		}
	}
}

// A dead letter carries the original and where it came from; its replay
// is the original again, under the original's key and a message id that is
// the same however often the same dead letter is replayed.
func TestLetterAndReplayRoundTrip(t *testing.T) {
	stored := time.Date(2026, 12, 7, 7, 59, 0, 0, time.UTC)
	o := Original{Subject: "shop.orders.created", Sequence: 42, Stored: stored, Data: []byte("payload"),
		Header: nats.Header{"Nats-Msg-Id": {"order-7"}, "Nats-Expected-Stream": {"shop_orders"}, "Ce-Type": {"order.created"}}}
	a := Advisory{Reason: ReasonTerminated, Stream: "shop_orders", Consumer: "billing", StreamSeq: 42, Deliveries: 2,
		Error: "amount is negative", Time: stored.Add(time.Minute)}
	l := Letter("shop.dead.shop_orders.billing", Source{Topic: "shop/orders", Consumer: "shop/billing"}, a, o)

	want := map[string]string{
		HeaderReason: "Terminated", HeaderError: "amount is negative", HeaderTopic: "shop/orders",
		HeaderConsumer: "shop/billing", HeaderStream: "shop_orders", HeaderSequence: "42", HeaderDeliveries: "2",
		HeaderSubject: "shop.orders.created", HeaderPublished: "2026-12-07T07:59:00Z", HeaderTime: "2026-12-07T08:00:00Z",
		HeaderKey: "order-7", "Ce-Type": "order.created",
		"Hubflow-Original-Nats-Msg-Id": "order-7", "Hubflow-Original-Nats-Expected-Stream": "shop_orders",
		nats.MsgIdHdr: MessageID(a, o),
	}
	for name, v := range want {
		if got := l.Header.Get(name); got != v {
			t.Errorf("dead letter header %s = %q, want %q", name, got, v)
		}
	}
	if l.Header.Get("Nats-Expected-Stream") != "" || string(l.Data) != "payload" || l.Subject != "shop.dead.shop_orders.billing" {
		t.Errorf("dead letter: %+v", l)
	}

	r1, err := Replay("shop_dead", 3, stored, l.Header, l.Data)
	if err != nil {
		t.Fatal(err)
	}
	r2, _ := Replay("shop_dead", 3, stored, l.Header, l.Data)
	r3, _ := Replay("shop_dead", 4, stored, l.Header, l.Data)
	if r1.Subject != "shop.orders.created" || string(r1.Data) != "payload" || r1.Header.Get("Ce-Type") != "order.created" {
		t.Errorf("replay: %+v", r1)
	}
	if got := r1.Header.Get(binding.IdempotencyKeyHeader); got != "order-7" {
		t.Errorf("replay key %q, want the original's", got)
	}
	if id := r1.Header.Get(nats.MsgIdHdr); id == "order-7" || id != r2.Header.Get(nats.MsgIdHdr) || id == r3.Header.Get(nats.MsgIdHdr) {
		t.Errorf("replay ids %q %q %q: want one per dead letter, never the original's", id, r2.Header.Get(nats.MsgIdHdr), r3.Header.Get(nats.MsgIdHdr))
	}
	for name := range r1.Header {
		if strings.HasPrefix(name, "Hubflow-Dead-Letter-") || strings.HasPrefix(name, "Hubflow-Original-") || name == "Nats-Expected-Stream" {
			t.Errorf("replay keeps header %s", name)
		}
	}
	if _, err := Replay("s", 1, stored, nats.Header{"Ce-Type": {"x"}}, nil); err == nil {
		t.Error("replaying a message that is not a dead letter: no error")
	}
}

func TestParseSelection(t *testing.T) {
	s, err := ParseSelection(" all ")
	if err != nil || !s.All || !s.Includes(99) {
		t.Errorf("all: %+v %v", s, err)
	}
	s, err = ParseSelection("3, 5")
	if err != nil || !s.Includes(3) || !s.Includes(5) || s.Includes(4) {
		t.Errorf("3,5: %+v %v", s, err)
	}
	for _, bad := range []string{"", "x", "0", "3,,4", "-1"} {
		if _, err := ParseSelection(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}
