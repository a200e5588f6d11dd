package hub

import (
	"context"
	"maps"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hubflow/hubflow/internal/testnats"
)

func TestAuditTarget(t *testing.T) {
	created := func(s string) *Advisory { return &Advisory{Kind: StreamCreated, Stream: s} }
	stream := func(s string) *Advisory { return &Advisory{Kind: StreamCall, Stream: s} }
	durable := func(s, c string) *Advisory { return &Advisory{Kind: ConsumerCall, Stream: s, Consumer: c} }
	for _, tc := range []struct {
		subject, request string
		want             *Advisory
	}{
		{"$JS.API.STREAM.CREATE.ORDERS", "", created("ORDERS")},
		{"$JS.API.STREAM.UPDATE.ORDERS", "", stream("ORDERS")},
		{"$JS.API.STREAM.DELETE.ORDERS", "", stream("ORDERS")},
		{"$JS.API.STREAM.RESTORE.ORDERS", "", created("ORDERS")},
		{"$JS.API.CONSUMER.CREATE.ORDERS.worker", "", durable("ORDERS", "worker")},
		{"$JS.API.CONSUMER.CREATE.ORDERS.worker.orders.>", "", durable("ORDERS", "worker")},
		{"$JS.API.CONSUMER.CREATE.ORDERS", `{"stream_name":"ORDERS","config":{"durable_name":"worker"}}`, durable("ORDERS", "worker")},
		{"$JS.API.CONSUMER.CREATE.ORDERS", `{"stream_name":"ORDERS","config":{"name":"worker"}}`, durable("ORDERS", "worker")},
		{"$JS.API.CONSUMER.DURABLE.CREATE.ORDERS.worker", "", durable("ORDERS", "worker")},
		{"$JS.API.CONSUMER.DELETE.ORDERS.worker", "", durable("ORDERS", "worker")},
		// Ephemeral consumers are never hubflow's.
		{"$JS.API.CONSUMER.CREATE.ORDERS", `{"stream_name":"ORDERS","config":{}}`, nil},
		{"$JS.API.CONSUMER.CREATE.ORDERS", `not json`, nil},
		// Reads, data operations and placement change no declared config.
		{"$JS.API.STREAM.INFO.ORDERS", "", nil},
		{"$JS.API.STREAM.LIST", "", nil},
		{"$JS.API.STREAM.NAMES", "", nil},
		{"$JS.API.STREAM.PURGE.ORDERS", "", nil},
		{"$JS.API.STREAM.MSG.DELETE.ORDERS", "", nil},
		{"$JS.API.STREAM.MSG.GET.ORDERS", "", nil},
		{"$JS.API.STREAM.LEADER.STEPDOWN.ORDERS", "", nil},
		{"$JS.API.CONSUMER.INFO.ORDERS.worker", "", nil},
		{"$JS.API.CONSUMER.LIST.ORDERS", "", nil},
		{"$JS.API.CONSUMER.LEADER.STEPDOWN.ORDERS.worker", "", nil},
		{"$JS.API.INFO", "", nil},
		{"$JS.API.STREAM.UPDATE", "", nil},
		{"$JS.EVENT.ADVISORY.API", "", nil},
	} {
		got, ok := auditTarget(tc.subject, tc.request)
		switch {
		case tc.want == nil && ok:
			t.Errorf("%s: got %+v, want nothing", tc.subject, got)
		case tc.want != nil && (!ok || got != *tc.want):
			t.Errorf("%s %s: got %+v (%v), want %+v", tc.subject, tc.request, got, ok, *tc.want)
		}
	}
}

// Against a real server: every change is reported, the watching
// connection's own calls marked as such; nobody's reads are.
func TestWatchAdvisoriesReportsChanges(t *testing.T) {
	srv, err := testnats.Start(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	own, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer own.Close()
	got := make(chan Advisory, 100)
	w, err := WatchAdvisories(own, func(a Advisory) { got <- a })
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if err := own.Flush(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ownJS, _ := jetstream.New(own)
	other := testnats.Connect(t, srv.URL())

	if _, err := ownJS.CreateStream(ctx, jetstream.StreamConfig{Name: "ORDERS", Subjects: []string{"orders"}}); err != nil {
		t.Fatal(err)
	}
	cfg := jetstream.ConsumerConfig{Durable: "worker", AckPolicy: jetstream.AckExplicitPolicy, MaxDeliver: 5}
	if _, err := ownJS.CreateConsumer(ctx, "ORDERS", cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Stream(ctx, "ORDERS"); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Consumer(ctx, "ORDERS", "worker"); err != nil {
		t.Fatal(err)
	}
	cfg.MaxDeliver = 99
	if _, err := other.UpdateConsumer(ctx, "ORDERS", cfg); err != nil {
		t.Fatal(err)
	}
	// A deletion is reported twice, by two independent advisories.
	if err := other.DeleteConsumer(ctx, "ORDERS", "worker"); err != nil {
		t.Fatal(err)
	}
	want := map[Advisory]int{
		{Kind: StreamCreated, Stream: "ORDERS", Own: true}:                    1,
		{Kind: ConsumerCall, Stream: "ORDERS", Consumer: "worker", Own: true}: 1,
		{Kind: ConsumerCall, Stream: "ORDERS", Consumer: "worker"}:            2,
		{Kind: ConsumerDeleted, Stream: "ORDERS", Consumer: "worker"}:         1,
	}
	seen := map[Advisory]int{}
	var n int
	timeout := time.After(10 * time.Second)
	for n < 5 {
		select {
		case a := <-got:
			seen[a]++
			n++
		case <-timeout:
			t.Fatalf("advisories seen %v, want %v", seen, want)
		}
	}
	// Nothing else may follow: the reads must not show.
	select {
	case a := <-got:
		seen[a]++
	case <-time.After(200 * time.Millisecond):
	}
	if !maps.Equal(seen, want) {
		t.Errorf("advisories seen %v, want %v", seen, want)
	}
	if w.Dropped() != 0 {
		t.Errorf("dropped %d", w.Dropped())
	}
}
