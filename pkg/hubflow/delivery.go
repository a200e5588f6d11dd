package hubflow

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hubflow/hubflow/pkg/binding"
)

// Handler processes one delivery. Its error decides what an acknowledging
// consumer tells the stream: nil acknowledges, Poison(err) terminates the
// message (never redelivered), RetryAfter(err, d) asks for redelivery after
// d, any other error asks for redelivery after the binding's delay for that
// attempt. A panic counts as an error. An AtMostOnce consumer acknowledges
// nothing: an error is logged and the message is gone.
//
// ctx is not Run's: it stays alive when Run's context ends, so the handler
// can finish the message in hand during the drain, and ends when the drain
// timeout has passed.
type Handler func(ctx context.Context, d *Delivery) error

// Delivery is one message handed to a Handler.
type Delivery struct {
	Subject string
	Data    []byte
	Header  nats.Header
	// IdempotencyKey is stable across redeliveries of the same message: its
	// Hubflow-Idempotency-Key header (binding.IdempotencyKeyHeader) when not
	// empty, which the operator sets on a dead letter it replays into its
	// Topic so that the replay carries the original message's key; else its
	// Nats-Msg-Id (an ExactlyOnce producer always sets one); else
	// "<stream>:<stream sequence>:<stored time, Unix ns>". The stored time
	// tells stream incarnations apart: a stream deleted and created again
	// restarts its sequences at 1, and without it a persistent dedup record
	// would take the new stream's messages for the old one's. Key side
	// effects by it to make them idempotent.
	IdempotencyKey string
	Stream         string
	Sequence       uint64 // stream sequence
	NumDelivered   uint64 // 1 on the first delivery
	Published      time.Time

	msg jetstream.Msg
}

// InProgress tells the server the handler is still working, resetting the
// ack wait, so long work is not redelivered to another worker meanwhile.
// A no-op for an AtMostOnce consumer.
func (d *Delivery) InProgress() error {
	if d.msg == nil {
		return nil
	}
	return d.msg.InProgress()
}

func (c *Consumer) process(ctx context.Context, h Handler, d *Delivery) {
	if c.b.Ack == binding.AckNone {
		if err := c.call(ctx, h, d); err != nil {
			c.log.Warn("handler failed; AtMostOnce does not redeliver", "subject", d.Subject, "sequence", d.Sequence, "error", err)
		}
		return
	}
	// One key is handled by one worker at a time, with or without a dedup
	// record: a redelivery that arrives while the first delivery is still in
	// the handler or being confirmed (its ack wait ran out) waits for it,
	// then finds the key recorded (with a dedup record) or runs after it,
	// never beside it.
	if !c.claim(ctx, d.IdempotencyKey) {
		return // shutting down; the message comes back after the ack wait
	}
	seen := false
	if c.o.dedup != nil {
		var err error
		if seen, err = c.o.dedup.Seen(ctx, d.IdempotencyKey); err != nil {
			c.handlerErrors.Add(1)
			c.settle(d, fmt.Errorf("checking the dedup record: %w", err))
			c.release(d.IdempotencyKey)
			return
		}
	}
	var err error
	if seen {
		c.skipped.Add(1)
	} else {
		err = c.call(ctx, h, d)
	}
	if err != nil {
		c.settle(d, err)
		c.release(d.IdempotencyKey)
		return
	}
	if seen || c.o.dedup == nil {
		c.acknowledge(d)
		return
	}
	// Recording may wait on a disk or a database. It runs off the
	// handler's path, so the handler goes on with the next message
	// meanwhile and a record can commit many keys at once: handed to the
	// record itself when it can say when it is done, else on up to
	// recorders goroutines. The order per message stays: handler,
	// record, acknowledgement, then release.
	if r, ok := c.o.dedup.(asyncRecorder); ok {
		c.recording.Add(1)
		r.recordThen(d.IdempotencyKey, func(err error) {
			defer c.recording.Done()
			c.recorded(d, err)
		})
		return
	}
	select {
	case c.toRecord <- d:
	case <-ctx.Done():
		c.release(d.IdempotencyKey)
		// past the drain timeout; the message comes back after the ack wait
	}
}

// record records a processed message's key, then acknowledges it.
func (c *Consumer) record(ctx context.Context, d *Delivery) {
	c.recorded(d, c.o.dedup.Record(ctx, d.IdempotencyKey))
}

// recorded acknowledges a message once the record has its key.
func (c *Consumer) recorded(d *Delivery, err error) {
	if err != nil {
		// Acknowledge anyway: the side effect is done. Only a redelivery
		// (a lost ack) would now run the handler twice.
		c.log.Error("processed but not recorded: a redelivery would run the handler again",
			"key", d.IdempotencyKey, "error", err)
	}
	c.acknowledge(d)
}

// acknowledge acknowledges a message the handler is done with and releases
// its key: at once for a plain ack (a publish), once the server confirmed
// it for a double ack.
func (c *Consumer) acknowledge(d *Delivery) {
	if c.b.Ack == binding.AckDoubleAck {
		c.acks.send(d)
		return
	}
	c.settle(d, nil)
	c.release(d.IdempotencyKey)
}

// call runs the handler, turning a panic into an error, between the
// observers' Handling and their end.
func (c *Consumer) call(ctx context.Context, h Handler, d *Delivery) (err error) {
	if len(c.o.observers) > 0 {
		var end func(error)
		ctx, end = handling(c.o.observers, ctx, HandleInfo{Stream: c.b.Stream, Durable: c.b.Durable, Semantic: c.b.Semantic}, d)
		defer func() { end(err) }() // after the recover below has set err
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handler panicked: %v", r)
		}
		if err != nil {
			c.handlerErrors.Add(1)
		} else {
			c.processed.Add(1)
		}
	}()
	return h(ctx, d)
}

// settle acknowledges (a plain ack), naks or terminates d according to the
// handler's result. Each is a publish; none waits for the server.
func (c *Consumer) settle(d *Delivery, herr error) {
	var err error
	var poison *poisonError
	var retry *retryError
	switch {
	case herr == nil:
		err = d.msg.Ack()
	case errors.As(herr, &poison):
		err = d.msg.TermWithReason(herr.Error())
		c.terminated.Add(1)
		c.log.Warn("poison message terminated", "subject", d.Subject, "sequence", d.Sequence, "error", herr)
	case errors.As(herr, &retry):
		err = d.msg.NakWithDelay(retry.delay)
		c.naked.Add(1)
	default:
		err = d.msg.NakWithDelay(c.redeliveryDelay(d.NumDelivered))
		c.naked.Add(1)
		c.log.Debug("handler failed; asked for redelivery", "subject", d.Subject, "sequence", d.Sequence, "error", herr)
	}
	if err != nil {
		c.ackFailures.Add(1)
		c.log.Warn("acknowledgement not delivered; the message comes back after the ack wait",
			"subject", d.Subject, "sequence", d.Sequence, "error", err)
		return
	}
	c.settled.Add(1)
	if herr == nil {
		c.acked.Add(1)
	}
}

// redeliveryDelay is the binding's wait for the given delivery attempt; the
// last one repeats.
func (c *Consumer) redeliveryDelay(numDelivered uint64) time.Duration {
	delays := c.b.RedeliveryDelays
	if len(delays) == 0 {
		return c.b.AckWait
	}
	i := min(int(max(numDelivered, 1))-1, len(delays)-1)
	return delays[i]
}

// claim waits until no other worker of this process handles key, and
// marks it as handled until release. It fails only when ctx ends.
func (c *Consumer) claim(ctx context.Context, key string) bool {
	for {
		c.keysMu.Lock()
		busy, held := c.keys[key]
		if !held {
			c.keys[key] = nil // a channel only once someone waits
			c.keysMu.Unlock()
			return true
		}
		if busy == nil {
			busy = make(chan struct{})
			c.keys[key] = busy
		}
		c.keysMu.Unlock()
		select {
		case <-busy:
		case <-ctx.Done():
			return false
		}
	}
}

// release ends a claim and wakes whoever waits for the key.
func (c *Consumer) release(key string) {
	c.keysMu.Lock()
	busy := c.keys[key]
	delete(c.keys, key)
	c.keysMu.Unlock()
	if busy != nil {
		close(busy)
	}
}

func (c *Consumer) delivery(m jetstream.Msg) *Delivery {
	d := &Delivery{Subject: m.Subject(), Data: m.Data(), Header: m.Headers()}
	if c.b.Ack != binding.AckNone {
		d.msg = m
	}
	var ok bool
	if d.Stream, d.Sequence, d.NumDelivered, d.Published, ok = ackMeta(m.Reply()); !ok {
		if meta, err := m.Metadata(); err == nil {
			d.Stream, d.Sequence, d.NumDelivered, d.Published = meta.Stream, meta.Sequence.Stream, meta.NumDelivered, meta.Timestamp
		}
	}
	// A replayed dead letter has a Nats-Msg-Id of its own, so the stream's
	// duplicate window keeps it, and the original's key in the header.
	d.IdempotencyKey = binding.IdempotencyKey(d.Header, d.Stream, d.Sequence, d.Published)
	return d
}
