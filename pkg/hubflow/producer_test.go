package hubflow

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hubflow/hubflow/pkg/internal/natstest"
)

func TestProducerFollowsItsSemantic(t *testing.T) {
	h := startHub(t)
	for _, sem := range []string{"AtMostOnce", "AtLeastOnce", "ExactlyOnce"} {
		t.Run(sem, func(t *testing.T) {
			ctx := ctxT(t)
			stream := "S_" + sem
			h.stream(t, stream, sem, sem+".>")
			p, err := NewProducer(ctx, producerBinding(h.srv.URL(), stream, sem, sem+".>", sem+".orders"), quiet())
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close(ctx)
			ack, err := p.Publish(ctx, Msg{Data: []byte("one")})
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			switch sem {
			case "AtMostOnce":
				if ack.Sequence != 0 || ack.ID != "" {
					t.Errorf("AtMostOnce got an acknowledgement %+v, want none", ack)
				}
				waitFor(t, "the message to be stored", func() bool { return h.count(t, stream) == 1 })
				return
			case "AtLeastOnce":
				if ack.Stream != stream || ack.Sequence != 1 || ack.ID != "" {
					t.Errorf("ack = %+v, want sequence 1 of %s and no message id", ack, stream)
				}
			case "ExactlyOnce":
				if ack.Sequence != 1 || ack.ID == "" {
					t.Errorf("ack = %+v, want sequence 1 and a generated message id", ack)
				}
				// The same logical message again: stored once, reported duplicate.
				again, err := p.Publish(ctx, Msg{Data: []byte("one"), ID: ack.ID})
				if err != nil {
					t.Fatal(err)
				}
				if !again.Duplicate || again.Sequence != 1 {
					t.Errorf("republish with id %s = %+v, want a duplicate of sequence 1", ack.ID, again)
				}
				if st := p.Stats(); st.Duplicates != 1 || st.Acked != 2 {
					t.Errorf("stats %+v, want 2 acked of which 1 duplicate", st)
				}
			}
			if n := h.count(t, stream); n != 1 {
				t.Errorf("stream holds %d messages, want 1", n)
			}
		})
	}
}

func TestProducerRefusesWhatTheBindingDoesNotAllow(t *testing.T) {
	h := startHub(t)
	ctx := ctxT(t)
	h.stream(t, "S", "AtLeastOnce", "orders.>")
	b := producerBinding(h.srv.URL(), "S", "AtLeastOnce", "orders.eu")
	p, err := NewProducer(ctx, b, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	for _, subject := range []string{"orders.us", "orders.*", "payments"} {
		if _, err := p.Publish(ctx, Msg{Subject: subject}); !errors.Is(err, ErrSubjectNotAllowed) {
			t.Errorf("publish to %q: err = %v, want ErrSubjectNotAllowed", subject, err)
		}
	}
	if _, err := NewConsumer(ctx, b, quiet()); !errors.Is(err, ErrWrongRole) {
		t.Errorf("NewConsumer(producer binding) err = %v, want ErrWrongRole", err)
	}
	b.Creds = []byte("not a creds file")
	if _, err := NewProducer(ctx, b, quiet()); err == nil {
		t.Error("NewProducer accepted creds that are not a credentials file")
	}
}

// A publish made before the stream exists is answered "no responders" and
// retried until the stream appears.
func TestProducerRetriesUntilTheStreamAnswers(t *testing.T) {
	h := startHub(t)
	ctx := ctxT(t)
	b := producerBinding(h.srv.URL(), "LATE", "ExactlyOnce", "late")
	b.Retries = 1000
	p, err := NewProducer(ctx, b, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	f, err := p.PublishAsync(ctx, Msg{Data: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a retry", func() bool { return p.Stats().Retries > 0 })
	h.stream(t, "LATE", "ExactlyOnce", "late")
	ack, err := f.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ack.Sequence != 1 || h.count(t, "LATE") != 1 {
		t.Errorf("ack %+v, stream holds %d: want the message stored once", ack, h.count(t, "LATE"))
	}
}

// Cutting the producer's connection mid-batch loses nothing and, with
// message ids, stores nothing twice.
func TestProducerResumesAfterAConnectionCut(t *testing.T) {
	h := startHub(t)
	ctx := ctxT(t)
	h.stream(t, "CUT", "ExactlyOnce", "cut")
	link := natstest.NewLink(t, h.srv.URL())
	p, err := NewProducer(ctx, producerBinding(link.URL(), "CUT", "ExactlyOnce", "cut"), quiet(), WithMaxPending(256))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	const n = 5000
	futures := make([]*Future, 0, n)
	cuts := 0
	for i := range n {
		if i%1000 == 500 {
			cuts += link.Cut()
		}
		f, err := p.PublishAsync(ctx, Msg{Data: fmt.Appendf(nil, "%d", i), ID: fmt.Sprint("m-", i)})
		if err != nil {
			t.Fatal(err)
		}
		futures = append(futures, f)
	}
	for i, f := range futures {
		if _, err := f.Wait(ctx); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	st := p.Stats()
	t.Logf("%d cuts, stats %+v", cuts, st)
	if got := h.count(t, "CUT"); got != n {
		t.Errorf("stream holds %d messages, want %d", got, n)
	}
	if cuts == 0 {
		t.Error("no connection was cut")
	}
}

func TestProducerCloseReportsWhatWasNotAcknowledged(t *testing.T) {
	h := startHub(t)
	ctx := ctxT(t)
	h.stream(t, "DOWN", "AtLeastOnce", "down")
	b := producerBinding(h.srv.URL(), "DOWN", "AtLeastOnce", "down")
	b.Retries = 1000
	p, err := NewProducer(ctx, b, quiet())
	if err != nil {
		t.Fatal(err)
	}
	h.srv.Stop()
	f, err := p.PublishAsync(ctx, Msg{Data: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	closeCtx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if err := p.Close(closeCtx); err == nil {
		t.Error("Close reported nothing while a message was unacknowledged")
	}
	_, err = f.Wait(ctx)
	var pe *PublishError
	if !errors.As(err, &pe) || !errors.Is(err, ErrClosed) || pe.Subject != "down" {
		t.Fatalf("future err = %v, want a *PublishError on %q wrapping ErrClosed", err, "down")
	}
	if _, err := p.Publish(ctx, Msg{}); !errors.Is(err, ErrClosed) {
		t.Errorf("publish after Close: err = %v, want ErrClosed", err)
	}
}

// A stream refusing a message for good (here: too large) fails the publish
// at once, with the JetStream error inside.
func TestProducerDoesNotRetryAPermanentRefusal(t *testing.T) {
	h := startHub(t)
	ctx := ctxT(t)
	if _, err := h.js.CreateStream(ctx, jetstream.StreamConfig{Name: "SMALL", Subjects: []string{"small"}, MaxMsgSize: 8}); err != nil {
		t.Fatal(err)
	}
	p, err := NewProducer(ctx, producerBinding(h.srv.URL(), "SMALL", "AtLeastOnce", "small"), quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	_, err = p.Publish(ctx, Msg{Data: []byte("far more than eight bytes")})
	var apiErr *jetstream.APIError
	var pe *PublishError
	if !errors.As(err, &apiErr) || !errors.As(err, &pe) || pe.Attempts != 1 {
		t.Fatalf("err = %v, want a *PublishError after 1 attempt wrapping a *jetstream.APIError", err)
	}
	if p.Stats().Retries != 0 {
		t.Errorf("retried a permanent refusal %d times", p.Stats().Retries)
	}
}

// An acknowledgement from a stream other than the binding's (one that
// captured the binding's subjects) fails the publish: the message is not in
// its Topic, whatever the stream that stored it says.
func TestProducerRefusesAnAckFromAnotherStream(t *testing.T) {
	h := startHub(t)
	ctx := ctxT(t)
	h.stream(t, "SQUAT", "ExactlyOnce", "pay.>")
	for _, sem := range []string{"AtLeastOnce", "ExactlyOnce"} {
		t.Run(sem, func(t *testing.T) {
			p, err := NewProducer(ctx, producerBinding(h.srv.URL(), "PAY", sem, "pay.>"), quiet())
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close(ctx)
			ack, err := p.Publish(ctx, Msg{Subject: "pay.eu", Data: []byte("x")})
			if !errors.Is(err, ErrWrongStream) || !strings.Contains(err.Error(), "SQUAT") {
				t.Fatalf("publish = %+v, %v; want ErrWrongStream naming SQUAT", ack, err)
			}
			if p.Stats().Retries != 0 {
				t.Errorf("retried %d times into the same stream", p.Stats().Retries)
			}
		})
	}
}
