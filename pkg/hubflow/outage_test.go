package hubflow

import (
	"context"
	"errors"
	"testing"
	"time"
)

// A Publish made while the hub is down, and given up on, must not reach the
// stream when the hub comes back long after the duplicate window (issue 9,
// item 2): nats.go would otherwise hold every attempt in its reconnect
// buffer and send them all at reconnect. The caller is told ErrNotStored,
// and that is true.
func TestPublishDuringAnOutageIsNotStoredLater(t *testing.T) {
	h := startHub(t)
	ctx := ctxT(t)
	h.stream(t, "OUTAGE", "ExactlyOnce", "outage")
	b := producerBinding(h.srv.URL(), "OUTAGE", "ExactlyOnce", "outage")
	b.AckTimeout, b.Retries, b.RetryWait, b.DuplicateWindow = 200*time.Millisecond, 3, 100*time.Millisecond, time.Second
	p, err := NewProducer(ctx, b, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)

	h.srv.Stop()
	// Once the client knows the connection is down. (An attempt written to
	// a connection that has died unnoticed may be lost or not: that one is
	// ErrOutcomeUnknown, truthfully.)
	waitFor(t, "the producer to notice the outage", func() bool { return !p.nc.IsConnected() })
	_, err = p.Publish(ctx, Msg{ID: "order-1", Data: []byte("x")})
	if err == nil {
		t.Fatal("publish succeeded with the hub down")
	}
	if !errors.Is(err, ErrNotStored) || errors.Is(err, ErrOutcomeUnknown) {
		t.Errorf("err = %v: want ErrNotStored (no attempt left the client), not ErrOutcomeUnknown", err)
	}
	time.Sleep(2 * b.DuplicateWindow) // an outage longer than the window: no deadline to wait for
	if err := h.srv.Restart(); err != nil {
		t.Fatal(err)
	}
	// A publish after the reconnect is stored: the connection is back, and
	// anything buffered would have been flushed before it.
	waitCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		if _, err := p.Publish(waitCtx, Msg{ID: "order-2", Data: []byte("y")}); err == nil {
			break
		} else if waitCtx.Err() != nil {
			t.Fatalf("no publish succeeded after the restart: %v", err)
		}
	}
	if n := h.count(t, "OUTAGE"); n != 1 {
		t.Errorf("stream holds %d messages, want only order-2: the publish reported not stored reached the stream at reconnect", n)
	}
}

// An attempt that went out and was never answered may have been stored:
// the error says the outcome is unknown.
func TestUnansweredPublishIsOutcomeUnknown(t *testing.T) {
	h := startHub(t)
	ctx := ctxT(t)
	// A plain subscriber takes the subject: attempts are delivered (no
	// "no responders") and never answered, as when an ack is lost.
	sub, err := h.nc.SubscribeSync("silent")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	b := producerBinding(h.srv.URL(), "SILENT", "ExactlyOnce", "silent")
	b.AckTimeout, b.Retries, b.RetryWait = 100*time.Millisecond, 1, 50*time.Millisecond
	p, err := NewProducer(ctx, b, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	_, err = p.Publish(ctx, Msg{ID: "x", Data: []byte("x")})
	if !errors.Is(err, ErrOutcomeUnknown) || errors.Is(err, ErrNotStored) || !errors.Is(err, ErrAckTimeout) {
		t.Errorf("err = %v: want ErrOutcomeUnknown (and ErrAckTimeout), not ErrNotStored", err)
	}
}

// A caller whose context ends while its message is still being retried is
// told the outcome is unknown, never that it was not stored: the retries
// go on and may store it.
func TestPublishAbandonedByItsContextIsOutcomeUnknown(t *testing.T) {
	h := startHub(t)
	ctx := ctxT(t)
	// No stream yet: every attempt is answered "no responders" and retried.
	b := producerBinding(h.srv.URL(), "LATE", "ExactlyOnce", "late.>")
	b.AckTimeout, b.Retries, b.RetryWait = 500*time.Millisecond, 3, 100*time.Millisecond
	p, err := NewProducer(ctx, b, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	_, err = p.Publish(short, Msg{Subject: "late.x", ID: "order-1", Data: []byte("x")})
	var pe *PublishError
	if !errors.As(err, &pe) || pe.ID != "order-1" || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want a *PublishError for order-1 wrapping the deadline", err)
	}
	if !errors.Is(err, ErrOutcomeUnknown) || errors.Is(err, ErrNotStored) {
		t.Errorf("err = %v says not stored, though the message is still being retried", err)
	}
}
