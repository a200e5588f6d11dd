package hubflow

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hubflow/hubflow/pkg/internal/natstest"
)

// publishN stores n messages through a producer of sem, numbered 0..n-1.
func publishN(t *testing.T, h *hub, stream, sem, subject string, n int) {
	t.Helper()
	ctx := ctxT(t)
	p, err := NewProducer(ctx, producerBinding(h.srv.URL(), stream, sem, subject), quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	for i := range n {
		if _, err := p.PublishAsync(ctx, Msg{Data: fmt.Append(nil, i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "messages stored", func() bool { return h.count(t, stream) == uint64(n) })
}

// runConsumer runs c until stop returns true for a delivery count, then
// ends Run gracefully and returns its error.
func runConsumer(t *testing.T, c *Consumer, h Handler, done func() bool) error {
	t.Helper()
	ctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- c.Run(ctx, h) }()
	waitFor(t, "the consumer to finish its work", done)
	cancel()
	return <-errc
}

func TestConsumerAcknowledgesAsItsSemanticSays(t *testing.T) {
	h := startHub(t)
	for _, sem := range []string{"AtMostOnce", "AtLeastOnce", "ExactlyOnce"} {
		t.Run(sem, func(t *testing.T) {
			stream := "C_" + sem
			h.stream(t, stream, sem, "c."+sem)
			h.durable(t, stream, "worker", sem, 5*time.Second)
			publishN(t, h, stream, sem, "c."+sem, 3)
			c, err := NewConsumer(ctxT(t), consumerBinding(h.srv.URL(), stream, "worker", sem, 5*time.Second), quiet())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close(context.Background())
			var mu sync.Mutex
			var keys []string
			err = runConsumer(t, c, func(_ context.Context, d *Delivery) error {
				mu.Lock()
				defer mu.Unlock()
				keys = append(keys, d.IdempotencyKey)
				return nil
			}, func() bool { return c.Stats().Processed == 3 })
			if err != nil {
				t.Fatal(err)
			}
			info := h.consumerInfo(t, stream, "worker")
			if info.NumPending != 0 || info.NumAckPending != 0 {
				t.Errorf("durable has %d pending and %d unacknowledged, want none", info.NumPending, info.NumAckPending)
			}
			if st := c.Stats(); sem == "AtMostOnce" && st.Acked != 0 || sem != "AtMostOnce" && st.Acked != 3 {
				t.Errorf("stats %+v: wrong number of acknowledgements for %s", st, sem)
			}
			if sem == "ExactlyOnce" && (len(keys[0]) < 10 || keys[0] == keys[1]) {
				t.Errorf("keys %v: want the producer's distinct message ids", keys)
			}
			if sem == "AtLeastOnce" && !regexp.MustCompile(`^`+stream+`:1:[0-9]{19}$`).MatchString(keys[0]) {
				t.Errorf("key %q: without a message id it is <stream>:<sequence>:<stored time in ns>", keys[0])
			}
		})
	}
}

// A failing handler gets the message again; a poison one never again.
func TestConsumerRedeliversFailuresAndTerminatesPoison(t *testing.T) {
	h := startHub(t)
	h.stream(t, "F", "AtLeastOnce", "f")
	h.durable(t, "F", "worker", "AtLeastOnce", 5*time.Second)
	publishN(t, h, "F", "AtLeastOnce", "f", 2)
	c, err := NewConsumer(ctxT(t), consumerBinding(h.srv.URL(), "F", "worker", "AtLeastOnce", 5*time.Second), quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	var calls [2]atomic.Int32
	err = runConsumer(t, c, func(_ context.Context, d *Delivery) error {
		n := calls[d.Sequence-1].Add(1)
		switch {
		case d.Sequence == 1:
			return Poison(errors.New("unparsable"))
		case n == 1:
			return errors.New("mail provider down")
		case n == 2:
			panic("a bug")
		}
		return nil
	}, func() bool { return c.Stats().Processed == 1 })
	if err != nil {
		t.Fatal(err)
	}
	if a, b := calls[0].Load(), calls[1].Load(); a != 1 || b != 3 {
		t.Errorf("poison handled %d times (want 1), failing message %d times (want 3)", a, b)
	}
	st := c.Stats()
	if st.Terminated != 1 || st.Naked != 2 || st.HandlerErrors != 3 {
		t.Errorf("stats %+v: want 1 terminated, 2 naks, 3 handler errors", st)
	}
	if info := h.consumerInfo(t, "F", "worker"); info.NumAckPending != 0 {
		t.Errorf("%d messages left unacknowledged", info.NumAckPending)
	}
}

// Ending Run's context lets the handler finish and acknowledge.
func TestConsumerDrainsOnShutdown(t *testing.T) {
	h := startHub(t)
	h.stream(t, "D", "ExactlyOnce", "d")
	h.durable(t, "D", "worker", "ExactlyOnce", 5*time.Second)
	publishN(t, h, "D", "ExactlyOnce", "d", 1)
	c, err := NewConsumer(ctxT(t), consumerBinding(h.srv.URL(), "D", "worker", "ExactlyOnce", 5*time.Second), quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	ctx, cancel := context.WithCancel(ctxT(t))
	started, release := make(chan struct{}), make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		errc <- c.Run(ctx, func(hctx context.Context, _ *Delivery) error {
			close(started)
			<-release
			return hctx.Err() // still alive while draining
		})
	}()
	<-started
	cancel()
	close(release)
	if err := <-errc; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if st := c.Stats(); st.Processed != 1 || st.Acked != 1 {
		t.Errorf("stats %+v: the message in hand at shutdown was not finished and acknowledged", st)
	}
	if info := h.consumerInfo(t, "D", "worker"); info.NumAckPending != 0 {
		t.Errorf("%d messages left unacknowledged after the drain", info.NumAckPending)
	}
}

// The documented gap, measured: a crash after the side effect and before the
// dedup record runs the handler twice; a side effect keyed by the
// idempotency key still happens once.
func TestExactlyOnceGapNeedsAnIdempotentSideEffect(t *testing.T) {
	h := startHub(t)
	h.stream(t, "GAP", "ExactlyOnce", "gap")
	h.durable(t, "GAP", "ledger", "ExactlyOnce", time.Second)
	publishN(t, h, "GAP", "ExactlyOnce", "gap", 1)
	b := consumerBinding(h.srv.URL(), "GAP", "ledger", "ExactlyOnce", time.Second)

	var handlerRuns, plainEffects atomic.Int32
	var keyedMu sync.Mutex
	keyed := map[string]int{} // a table with a unique key: written at most once per key
	record := NewMemoryDedup(100)
	crashOnce := &crashingDedup{Dedup: record}

	for instance := 0; ; instance++ {
		if instance > 3 {
			t.Fatal("message never processed to the end")
		}
		c, err := NewConsumer(ctxT(t), b, quiet(), WithDedup(crashOnce))
		if err != nil {
			t.Fatal(err)
		}
		crashOnce.crash = func() { c.Conn().Close() }
		ctx, cancel := context.WithCancel(ctxT(t))
		go func() {
			defer cancel()
			eventually(func() bool {
				st := c.Stats()
				return st.Acked+st.AckFailures > 0
			})
		}()
		err = c.Run(ctx, func(_ context.Context, d *Delivery) error {
			handlerRuns.Add(1)
			plainEffects.Add(1)
			keyedMu.Lock()
			if _, done := keyed[d.IdempotencyKey]; !done {
				keyed[d.IdempotencyKey] = 1
			}
			keyedMu.Unlock()
			return nil
		})
		cancel()
		if err == nil {
			break
		}
	}
	t.Logf("handler runs %d, non-idempotent side effects %d, keyed side effects %d", handlerRuns.Load(), plainEffects.Load(), len(keyed))
	if handlerRuns.Load() != 2 || plainEffects.Load() != 2 {
		t.Errorf("the crash before the record should have run the handler twice, ran %d", handlerRuns.Load())
	}
	if len(keyed) != 1 {
		t.Errorf("the keyed side effect happened %d times, want 1", len(keyed))
	}
}

// crashingDedup "crashes" the consumer the first time a key is to be
// recorded: the connection closes and the record is never written.
type crashingDedup struct {
	Dedup
	crash   func()
	crashed atomic.Bool
}

func (d *crashingDedup) Record(ctx context.Context, key string) error {
	if d.crashed.CompareAndSwap(false, true) {
		d.crash()
		return errors.New("crashed before recording")
	}
	return d.Dedup.Record(ctx, key)
}

// A redelivery after a lost acknowledgement is skipped when the key was
// recorded: the handler runs once.
func TestDedupSkipsARedeliveryAfterALostAck(t *testing.T) {
	h := startHub(t)
	h.stream(t, "LOST", "ExactlyOnce", "lost")
	h.durable(t, "LOST", "ledger", "ExactlyOnce", time.Second)
	publishN(t, h, "LOST", "ExactlyOnce", "lost", 1)
	b := consumerBinding(h.srv.URL(), "LOST", "ledger", "ExactlyOnce", time.Second)
	record, err := OpenFileDedup(t.TempDir()+"/processed", true)
	if err != nil {
		t.Fatal(err)
	}
	defer record.Close()
	var runs atomic.Int32
	var skipped uint64
	for instance := 0; instance < 2; instance++ {
		c, err := NewConsumer(ctxT(t), b, quiet(), WithDedup(record))
		if err != nil {
			t.Fatal(err)
		}
		first := instance == 0
		handler := func(_ context.Context, _ *Delivery) error {
			runs.Add(1)
			if first {
				// Crash after the handler, before the ack: the library
				// records the key after this returns, then fails to ack.
				c.Conn().Close()
			}
			return nil
		}
		if first {
			// Run ends on its own once it sees its connection closed;
			// stopping it earlier could end it cleanly first.
			err = c.Run(ctxT(t), handler)
		} else {
			err = runConsumer(t, c, handler, func() bool { return c.Stats().Skipped > 0 })
		}
		if first != (err != nil) {
			t.Fatalf("instance %d: Run err = %v", instance, err)
		}
		skipped += c.Stats().Skipped
		c.Close(context.Background())
	}
	if runs.Load() != 1 || skipped != 1 || record.Len() != 1 {
		t.Errorf("handler ran %d times, %d redeliveries skipped, %d keys recorded: want 1, 1, 1", runs.Load(), skipped, record.Len())
	}
	if info := h.consumerInfo(t, "LOST", "ledger"); info.NumAckPending != 0 || info.NumPending != 0 {
		t.Errorf("durable: %d unacknowledged, %d pending", info.NumAckPending, info.NumPending)
	}
}

// A consumer whose connection is cut keeps running: it reconnects, pulls
// again, and everything ends up processed and acknowledged.
func TestConsumerResumesAfterAConnectionCut(t *testing.T) {
	h := startHub(t)
	h.stream(t, "RC", "AtLeastOnce", "rc")
	h.durable(t, "RC", "worker", "AtLeastOnce", 2*time.Second)
	const n = 3000
	publishN(t, h, "RC", "AtLeastOnce", "rc", n)
	link := natstest.NewLink(t, h.srv.URL())
	c, err := NewConsumer(ctxT(t), consumerBinding(link.URL(), "RC", "worker", "AtLeastOnce", 2*time.Second),
		quiet(), WithConcurrency(4))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	var mu sync.Mutex
	seen := map[uint64]bool{}
	cuts := 0
	err = runConsumer(t, c, func(_ context.Context, d *Delivery) error {
		mu.Lock()
		seen[d.Sequence] = true
		cut := len(seen) == n/3 || len(seen) == 2*n/3
		mu.Unlock()
		if cut {
			cuts += link.Cut()
		}
		return nil
	}, func() bool {
		mu.Lock()
		all := len(seen) == n
		mu.Unlock()
		info := h.consumerInfo(t, "RC", "worker")
		return all && info.NumAckPending == 0 && info.NumPending == 0
	})
	if err != nil {
		t.Fatalf("Run ended with %v: a cut connection should only make it reconnect", err)
	}
	if cuts != 2 {
		t.Errorf("%d cuts, want 2", cuts)
	}
	t.Logf("stats after %d cuts: %+v", cuts, c.Stats())
}

// Close is the consumer's graceful stop, as Producer.Close is the
// producer's: it ends a running Run (the handler in hand finishes and is
// acknowledged), and it reports what the consumer received and could not
// settle, which the server redelivers after the ack wait.
func TestConsumerCloseStopsRunAndReportsWhatWasNotAcknowledged(t *testing.T) {
	h := startHub(t)
	for _, sem := range []string{"AtLeastOnce", "ExactlyOnce"} {
		t.Run(sem+"/graceful", func(t *testing.T) {
			stream := "CLOSE_" + sem
			h.stream(t, stream, sem, "close."+sem)
			h.durable(t, stream, "worker", sem, 30*time.Second)
			publishN(t, h, stream, sem, "close."+sem, 5)
			c, err := NewConsumer(ctxT(t), consumerBinding(h.srv.URL(), stream, "worker", sem, 30*time.Second), quiet(), WithBatch(1))
			if err != nil {
				t.Fatal(err)
			}
			inHandler, release := make(chan struct{}), make(chan struct{})
			var once sync.Once
			errc := make(chan error, 1)
			go func() {
				errc <- c.Run(context.Background(), func(context.Context, *Delivery) error {
					once.Do(func() { close(inHandler) })
					<-release
					return nil
				})
			}()
			<-inHandler
			closed := make(chan error, 1)
			go func() { closed <- c.Close(ctxT(t)) }()
			close(release) // the handler in hand finishes while Close waits
			if err := <-closed; err != nil {
				t.Errorf("Close after a graceful stop: %v", err)
			}
			if err := <-errc; err != nil {
				t.Errorf("Run ended by Close returned %v, want nil", err)
			}
			st := c.Stats()
			if st.Delivered == 0 || st.Acked != st.Delivered {
				t.Errorf("stats %+v: every delivery taken should be acknowledged before Close returns", st)
			}
			// Close returns once the acknowledgements are written (closing
			// the connection flushes them); the server settles them a moment
			// later (5s are allowed, well inside the 30s ack wait). It may have sent one more message
			// into the pull being drained, which the client never got: that
			// one waits for the ack wait, and is the only kind allowed.
			var info *jetstream.ConsumerInfo
			unreceived := func() uint64 { return info.Delivered.Consumer - min(info.Delivered.Consumer, st.Delivered) }
			for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
				info = h.consumerInfo(t, stream, "worker")
				if uint64(info.NumAckPending) <= unreceived() || time.Now().After(deadline) {
					break
				}
			}
			if uint64(info.NumAckPending) > unreceived() {
				t.Errorf("server waits for %d acknowledgement(s), of which %d for messages it sent and the client never received (stats %+v)",
					info.NumAckPending, unreceived(), st)
			}
			if n := unreceived(); n > 0 {
				t.Logf("the server sent %d message(s) into the pull being drained; redelivered after the ack wait", n)
			}
		})
	}
	t.Run("stuck handler", func(t *testing.T) {
		h.stream(t, "STUCK", "AtLeastOnce", "stuck")
		h.durable(t, "STUCK", "worker", "AtLeastOnce", 30*time.Second)
		publishN(t, h, "STUCK", "AtLeastOnce", "stuck", 3)
		c, err := NewConsumer(ctxT(t), consumerBinding(h.srv.URL(), "STUCK", "worker", "AtLeastOnce", 30*time.Second),
			quiet(), WithBatch(1), WithDrainTimeout(100*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		inHandler, release := make(chan struct{}), make(chan struct{})
		defer close(release)
		var once sync.Once
		go c.Run(context.Background(), func(context.Context, *Delivery) error {
			once.Do(func() { close(inHandler) })
			<-release
			return nil
		})
		<-inHandler
		closeCtx, cancel := context.WithTimeout(ctxT(t), 500*time.Millisecond)
		defer cancel()
		err = c.Close(closeCtx)
		if err == nil || !strings.Contains(err.Error(), "1 message(s) unacknowledged") {
			t.Errorf("Close with a handler stuck on one message = %v, want it to report 1 unacknowledged (stats %+v)", err, c.Stats())
		}
	})
	t.Run("AtMostOnce", func(t *testing.T) {
		h.stream(t, "CLOSE_AMO", "AtMostOnce", "close.amo")
		h.durable(t, "CLOSE_AMO", "worker", "AtMostOnce", 0)
		c, err := NewConsumer(ctxT(t), consumerBinding(h.srv.URL(), "CLOSE_AMO", "worker", "AtMostOnce", 0), quiet())
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Close(ctxT(t)); err != nil {
			t.Errorf("AtMostOnce settles nothing, so Close has nothing to report: %v", err)
		}
		if err := c.Run(ctxT(t), func(context.Context, *Delivery) error { return nil }); !errors.Is(err, ErrClosed) {
			t.Errorf("Run after Close = %v, want ErrClosed", err)
		}
	})
}
