package hubflow

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hubflow/hubflow/pkg/binding"
)

// ConsumerStats counts what a Consumer did since it was created.
type ConsumerStats struct {
	Delivered     uint64 // messages received from the server
	Processed     uint64 // handler calls that returned nil
	HandlerErrors uint64 // handler calls that failed (including panics)
	Acked         uint64 // acknowledgements sent (DoubleAck: confirmed by the server)
	AckFailures   uint64 // acknowledgements that could not be sent or confirmed
	Naked         uint64 // redeliveries asked for
	Terminated    uint64 // poison messages terminated
	Skipped       uint64 // redeliveries of recorded keys acknowledged without the handler
	Dropped       uint64 // AtMostOnce: a message at or below one already delivered, not handed over
}

// Consumer reads a Topic through the durable its binding names, and
// acknowledges the way the binding's policy says:
//
//   - AtMostOnce (ack None): the handler runs once per delivery, nothing is
//     acknowledged, nothing is redelivered. A message below the last stream
//     sequence this consumer delivered is dropped, so a replay after a
//     consumer leader change is not processed twice.
//   - AtLeastOnce (ack Ack): acknowledge after the handler succeeded; on
//     error ask for redelivery after the binding's delay; terminate poison.
//     A crash between the handler and the ack redelivers: handlers must
//     tolerate duplicates.
//   - ExactlyOnce (ack DoubleAck): as AtLeastOnce, but an acknowledgement
//     counts once the server confirmed it (it is sent again when no
//     confirmation comes), and the handler gets a stable IdempotencyKey.
//     WithDedup records processed keys so a redelivery after a lost
//     acknowledgement is not processed again; see Dedup for the gap that
//     only an idempotent side effect closes. Recording and confirming run
//     beside the handler, many messages at a time, so the handler goes on
//     with the next message instead of waiting a round trip; a message's
//     key stays claimed until its acknowledgement is confirmed or given up.
//
// The Consumer binds to the existing durable (it needs only CONSUMER.INFO,
// CONSUMER.MSG.NEXT and ACK permissions) and creates nothing.
type Consumer struct {
	b    binding.Binding
	o    *options
	nc   *nats.Conn
	cons jetstream.Consumer
	log  *slog.Logger

	running atomic.Bool

	keysMu sync.Mutex
	keys   map[string]chan struct{} // idempotency keys being handled now

	// While Run runs: processed messages to the recorders (with a dedup
	// record), and the double acks awaiting their confirmation.
	toRecord  chan *Delivery
	recording sync.WaitGroup // keys handed to an asyncRecorder
	acks      *doubleAcks

	delivered, processed, handlerErrors, acked, ackFailures atomic.Uint64
	naked, terminated, skipped, dropped                     atomic.Uint64
	// settled counts deliveries whose ack, nak or term the server was
	// sent (for a double ack: confirmed); Close reports the rest.
	settled atomic.Uint64

	runMu   sync.Mutex
	stopRun context.CancelFunc // ends the running Run gracefully
	runDone chan struct{}      // closed when that Run returned
}

// recorders is how many keys a Consumer records at once with a Dedup of
// the application's (each Record may wait on a database) while its handlers
// go on: enough for a slow record to serve many messages at once, few
// enough to stay well under a durable's MaxAckPending. The library's own
// records say when they are done and need none.
const recorders = 256

// NewConsumer connects with a consumer binding and binds to its durable. It
// waits until the hub answers or ctx ends.
func NewConsumer(ctx context.Context, b binding.Binding, opts ...ConsumerOption) (*Consumer, error) {
	if b.Role != binding.RoleConsumer {
		return nil, fmt.Errorf("%w: NewConsumer got a %q binding for stream %s", ErrWrongRole, b.Role, b.Stream)
	}
	switch b.Ack {
	case binding.AckNone, binding.AckExplicit, binding.AckDoubleAck:
	default:
		return nil, fmt.Errorf("hubflow: consumer binding %s/%s has %s %q, want %s, %s or %s",
			b.Stream, b.Durable, binding.KeyAck, b.Ack, binding.AckNone, binding.AckExplicit, binding.AckDoubleAck)
	}
	o := newConsumerOptions(opts)
	if o.name == "" {
		o.name = "hubflow-consumer " + b.Stream + "/" + b.Durable
	}
	// No message older than the stream's max age can come again, so a
	// record need not remember its key longer.
	if r, ok := o.dedup.(interface{ adoptRetention(time.Duration) }); ok {
		r.adoptRetention(b.MaxAge)
	}
	nc, err := connect(ctx, b, o, connEvents{})
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("hubflow: %w", err)
	}
	cons, err := js.Consumer(ctx, b.Stream, b.Durable)
	if err != nil {
		nc.Close()
		if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
			return nil, fmt.Errorf("hubflow: durable %q on stream %q does not exist (is its Consumer Ready?): %w", b.Durable, b.Stream, err)
		}
		return nil, fmt.Errorf("hubflow: looking up durable %q on stream %q: %w", b.Durable, b.Stream, err)
	}
	if none := cons.CachedInfo().Config.AckPolicy == jetstream.AckNonePolicy; none != (b.Ack == binding.AckNone) {
		nc.Close()
		return nil, fmt.Errorf("hubflow: durable %q acknowledges with %s but the binding says %s %q: the binding is stale",
			b.Durable, cons.CachedInfo().Config.AckPolicy, binding.KeyAck, b.Ack)
	}
	return &Consumer{
		b: b, o: o, nc: nc, cons: cons,
		log:  o.logger.With("stream", b.Stream, "durable", b.Durable, "semantic", b.Semantic),
		keys: map[string]chan struct{}{},
	}, nil
}

// Run hands every message to h until ctx ends, then drains: it stops
// pulling, lets the handlers finish the messages already received and
// acknowledges them, bounded by the drain timeout, and returns nil. It
// returns an error when the consumer cannot go on: its connection was
// closed, its durable deleted. Reconnects and leader changes are handled
// inside: pulling resumes, and acknowledgements sent while disconnected are
// buffered and delivered on reconnect. Run may be called once at a time.
func (c *Consumer) Run(ctx context.Context, h Handler) error {
	if !c.running.CompareAndSwap(false, true) {
		return errors.New("hubflow: Consumer.Run is already running")
	}
	defer c.running.Store(false)
	if c.nc.IsClosed() {
		return ErrClosed
	}
	// Close ends a running Run the way ending ctx does.
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan struct{})
	defer close(done)
	c.runMu.Lock()
	c.stopRun, c.runDone = stop, done
	c.runMu.Unlock()
	// Handlers and their acknowledgements outlive ctx by the drain
	// timeout; hard ends both.
	hard, cancelHard := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelHard()
	if c.b.Ack == binding.AckDoubleAck {
		acks, err := c.startDoubleAcks()
		if err != nil {
			return err
		}
		c.acks = acks
		defer acks.close(hard)
	}
	// Recorders live as long as Run: a goroutine per message would grow a
	// fresh stack for every record.
	var recordersDone sync.WaitGroup
	c.toRecord = make(chan *Delivery)
	if _, async := c.o.dedup.(asyncRecorder); c.o.dedup != nil && !async && c.b.Ack != binding.AckNone {
		for range recorders {
			recordersDone.Go(func() {
				for d := range c.toRecord {
					c.record(hard, d)
				}
			})
		}
	}
	var (
		wg   sync.WaitGroup
		work chan *Delivery
	)
	if c.o.concurrency > 1 {
		work = make(chan *Delivery)
		for range c.o.concurrency {
			wg.Go(func() {
				for d := range work {
					c.process(hard, h, d)
				}
			})
		}
	}
	var lastSeq uint64 // AtMostOnce duplicate guard; messages arrive one at a time
	var fatal atomic.Pointer[error]
	// Consume, not Messages: its subscription queues what arrives while the
	// handlers are busy (after a reconnect the client pulls a full batch
	// again), where the iterator's bounded channel would drop it.
	cc, err := c.cons.Consume(func(m jetstream.Msg) {
		c.delivered.Add(1)
		d := c.delivery(m)
		if c.b.Ack == binding.AckNone && d.Sequence != 0 {
			if d.Sequence <= lastSeq {
				c.dropped.Add(1)
				return
			}
			lastSeq = d.Sequence
		}
		if work == nil {
			c.process(hard, h, d)
			return
		}
		select {
		case work <- d:
		case <-hard.Done():
		}
	},
		jetstream.PullMaxMessages(c.o.batch),
		jetstream.PullExpiry(c.o.pullExpiry),
		jetstream.PullHeartbeat(pullHeartbeat(c.o.pullExpiry)),
		jetstream.ConsumeErrHandler(func(cc jetstream.ConsumeContext, err error) {
			switch {
			case errors.Is(err, jetstream.ErrConnectionClosed):
				err = fmt.Errorf("hubflow: consumer %s/%s: connection closed: %w", c.b.Stream, c.b.Durable, ErrClosed)
				fatal.CompareAndSwap(nil, &err)
			case errors.Is(err, jetstream.ErrConsumerDeleted), errors.Is(err, jetstream.ErrBadRequest):
				err = fmt.Errorf("hubflow: consumer %s/%s stopped: %w", c.b.Stream, c.b.Durable, err)
				fatal.CompareAndSwap(nil, &err)
				cc.Stop()
			default:
				// Missed heartbeats, a leader change, a reconnect: the
				// client pulls again by itself.
				c.log.Debug("pulling again", "reason", err)
			}
		}),
	)
	if err != nil {
		return fmt.Errorf("hubflow: pulling from %s/%s: %w", c.b.Stream, c.b.Durable, err)
	}
	select {
	case <-ctx.Done():
		cc.Drain()
		t := time.NewTimer(c.o.drainTimeout)
		select {
		case <-cc.Closed():
		case <-t.C:
			c.log.Warn("drain timeout: abandoning messages still held; they are redelivered after the ack wait")
			cc.Stop()
			cancelHard()
		}
		t.Stop()
	case <-cc.Closed():
	}
	if work != nil {
		close(work)
		wg.Wait()
	}
	close(c.toRecord)
	recordersDone.Wait()
	c.recording.Wait() // the acks' close, deferred above, waits for the rest
	if c.nc.IsClosed() {
		fatal.CompareAndSwap(nil, new(fmt.Errorf("hubflow: consumer %s/%s: connection closed: %w", c.b.Stream, c.b.Durable, ErrClosed)))
	}
	if ctx.Err() == nil {
		if err := fatal.Load(); err != nil {
			return *err
		}
	}
	return nil
}

// Stats returns the consumer's counters.
func (c *Consumer) Stats() ConsumerStats {
	return ConsumerStats{
		Delivered: c.delivered.Load(), Processed: c.processed.Load(), HandlerErrors: c.handlerErrors.Load(),
		Acked: c.acked.Load(), AckFailures: c.ackFailures.Load(), Naked: c.naked.Load(),
		Terminated: c.terminated.Load(), Skipped: c.skipped.Load(), Dropped: c.dropped.Load(),
	}
}

// Close stops the consumer as Producer.Close stops a producer. A running
// Run stops gracefully, as if its context ended: no new messages, handlers
// finish and their acknowledgements go out, within ctx and the drain
// timeout. Then the connection closes. The error says how many messages the
// consumer received and did not settle (acknowledge, ask again, terminate):
// the server redelivers those after the ack wait, so none is lost, but a
// handler may have run for them. AtMostOnce settles nothing and reports
// nothing.
func (c *Consumer) Close(ctx context.Context) error {
	c.runMu.Lock()
	stop, done := c.stopRun, c.runDone
	c.runMu.Unlock()
	if stop != nil {
		stop()
		select {
		case <-done:
		case <-ctx.Done():
		}
	}
	c.nc.Close()
	if n := c.unsettled(); n > 0 {
		return fmt.Errorf("hubflow: consumer %s/%s closed with %d message(s) unacknowledged; the server redelivers them after the ack wait (%s)",
			c.b.Stream, c.b.Durable, n, c.b.AckWait)
	}
	return nil
}

// unsettled is how many deliveries got no acknowledgement, nak or term.
func (c *Consumer) unsettled() uint64 {
	if c.b.Ack == binding.AckNone {
		return 0
	}
	taken := c.delivered.Load() - c.dropped.Load()
	return taken - min(taken, c.settled.Load())
}

// Conn is the consumer's connection, for status and metrics. Closing it ends
// the consumer like a crash would: whatever it has not acknowledged is
// redelivered after the ack wait.
func (c *Consumer) Conn() *nats.Conn { return c.nc }

// Binding is the binding the consumer was made from.
func (c *Consumer) Binding() binding.Binding { return c.b }

// pullHeartbeat is the idle heartbeat asked of the server for a pull of the
// given expiry: a fifth of it, kept inside what nats.go accepts (500ms to
// 30s, and at most half the expiry).
func pullHeartbeat(expiry time.Duration) time.Duration {
	return min(max(expiry/5, 500*time.Millisecond), 30*time.Second, expiry/2)
}
