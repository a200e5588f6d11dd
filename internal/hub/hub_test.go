package hub

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hubflow/hubflow/internal/testnats"
)

// The controllers create a new Topic's stream and a new Consumer's durable
// without looking first; that is safe only because the server answers a
// create of an existing name as this test shows: the same configuration,
// metadata included, returns what is there; any other is refused as
// ErrExists and nothing is changed.
func TestCreateNeverOverwrites(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := testnats.Start(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	h, err := New(nc)
	if err != nil {
		t.Fatal(err)
	}
	mine := jetstream.StreamConfig{Name: "S", Subjects: []string{"s.>"}, Metadata: map[string]string{"owner": "me"}}
	if _, err := h.CreateStream(ctx, mine); err != nil {
		t.Fatal(err)
	}
	if _, err := h.CreateStream(ctx, mine); err != nil {
		t.Errorf("creating the same stream again: %v, want what is there", err)
	}
	theirs := mine
	theirs.Metadata = map[string]string{"owner": "someone else"}
	if _, err := h.CreateStream(ctx, theirs); !errors.Is(err, ErrExists) {
		t.Errorf("creating over a stream of other metadata: %v, want ErrExists", err)
	}
	if info, err := h.Stream(ctx, "S"); err != nil || info.Config.Metadata["owner"] != "me" {
		t.Errorf("the stream after the refused create: %v, %v; want it unchanged", info, err)
	}

	durable := jetstream.ConsumerConfig{Durable: "D", AckPolicy: jetstream.AckExplicitPolicy, Metadata: map[string]string{"owner": "me"}}
	if _, err := h.CreateConsumer(ctx, "S", durable); err != nil {
		t.Fatal(err)
	}
	if _, err := h.CreateConsumer(ctx, "S", durable); err != nil {
		t.Errorf("creating the same durable again: %v, want what is there", err)
	}
	other := durable
	other.Metadata = map[string]string{"owner": "someone else"}
	other.MaxDeliver = 5
	if _, err := h.CreateConsumer(ctx, "S", other); !errors.Is(err, ErrExists) {
		t.Errorf("creating over a durable of another configuration: %v, want ErrExists", err)
	}
	if info, err := h.Consumer(ctx, "S", "D"); err != nil || info.Config.Metadata["owner"] != "me" || info.Config.MaxDeliver == 5 {
		t.Errorf("the durable after the refused create: %+v, %v; want it unchanged", info, err)
	}
}
