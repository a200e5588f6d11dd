// Package faults proves each delivery semantic's promise while things fail.
//
// For each semantic, a producer publishes numbered messages through the
// hubflow client library to an R3 Topic on an in-process three-node
// JetStream cluster, and consumer instances process them into a ledger kept
// outside the instances (the side effect). Meanwhile a fixed, seeded
// schedule kills the stream's leader node and restarts it, cuts the
// producer's connection in the middle of its asynchronous batch, and kills
// the consumer between handling a message and acknowledging it (a new
// instance takes over, as a restarted pod would). At the end the checker
// reads the stream back with plain nats.go and compares it, the producer's
// acknowledgements and the ledger:
//
//   - ExactlyOnce: no acknowledged message lost, none processed twice;
//   - AtLeastOnce: no acknowledged message lost (repeats are counted);
//   - AtMostOnce: no message processed twice (losses are counted).
//
// Run with -v to see the schedule and the counts:
//
//	go test ./test/faults/ -v -count=1
//
// HUBFLOW_FAULTS_N sets the number of messages per semantic (default
// 10000), HUBFLOW_FAULTS_RATE the producer's rate (default 1000/s; the
// library publishes asynchronously, so the rate only spreads the messages
// over the faults), HUBFLOW_FAULTS_SEED the schedule's seed (default 1),
// HUBFLOW_FAULTS_BUDGET how long one flow may take (default 5m). A flow
// that runs out of its budget fails with a dump of what each party was
// waiting for: the test's step, the producer's outstanding messages, the
// consumer's last delivery, each node's view of the stream and the
// durable, and the goroutines of the library and the test (watch_test.go).
//
// HUBFLOW_FAULTS_SABOTAGE shows that the checker catches a broken promise:
// "fire-and-forget" makes the AtLeastOnce and ExactlyOnce producers skip
// acknowledgements and retries (expect LOST > 0), "no-dedup" runs the
// ExactlyOnce consumers without their dedup record (expect PROCESSED TWICE
// > 0). Both runs must fail. "steal-port" takes each killed node's client
// port while it is down, as a process running beside the suite can: the
// first restart fails, the injector tries again, and the run must pass
// (before the retry, the node stayed down and the run failed).
package faults

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
	"github.com/hubflow/hubflow/pkg/hubflow"
)

func TestSemanticsUnderFaults(t *testing.T) {
	n := envInt("HUBFLOW_FAULTS_N", 10000)
	rate := envInt("HUBFLOW_FAULTS_RATE", 1000)
	seed := uint64(envInt("HUBFLOW_FAULTS_SEED", 1))
	sched := newSchedule(seed, n)
	t.Logf("seed %d, %d messages per semantic at %d/s, fault schedule:\n%s", seed, n, rate, sched)
	for _, sem := range []hubflowv1.DeliverySemantic{hubflowv1.ExactlyOnce, hubflowv1.AtLeastOnce, hubflowv1.AtMostOnce} {
		t.Run(string(sem), func(t *testing.T) { runFlow(t, sem, n, rate, sched) })
	}
}

// report is what one run measured.
type report struct {
	published, acked, publishErrors int
	producer                        hubflow.ProducerStats
	consumer                        hubflow.ConsumerStats
	instances                       int
	ledger                          ledgerCounts
	lost                            int
	stream                          streamAudit
	faults                          []string
}

func runFlow(t *testing.T, sem hubflowv1.DeliverySemantic, n, rate int, sched schedule) {
	cluster := startCluster(t)
	admin, err := nats.Connect(cluster.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	js, err := jetstream.New(admin)
	if err != nil {
		t.Fatal(err)
	}
	f, err := newFlow(sem, cluster.URL())
	if err != nil {
		t.Fatal(err)
	}
	led := newLedger(n)
	w := newWatch(string(sem), cluster, f.stream.Name, f.durable.Durable, n, led)
	ctx, stop := w.guard(t, context.Background(), envDuration("HUBFLOW_FAULTS_BUDGET", flowBudget))
	defer stop()
	w.at("creating the stream and the durable")
	if err := f.create(ctx, js, cluster); err != nil {
		t.Fatal(err)
	}
	sabotage := os.Getenv("HUBFLOW_FAULTS_SABOTAGE")
	switch sabotage {
	case "":
	case "fire-and-forget":
		f.producer.WaitForAck = false
	case "no-dedup":
		f.noDedup = true
	case "steal-port":
	default:
		t.Fatalf("HUBFLOW_FAULTS_SABOTAGE=%q: want fire-and-forget, no-dedup or steal-port", sabotage)
	}
	switch sabotage {
	case "":
	case "steal-port":
		t.Logf("SABOTAGED (%s): each killed node's first restart fails; this run must pass", sabotage)
	default:
		t.Logf("SABOTAGED (%s): this run is expected to fail", sabotage)
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelError}))

	var r report
	consCtx, stopConsumers := context.WithCancel(ctx)
	defer stopConsumers()
	consumed := make(chan consumerResult, 1)
	go func() {
		consumed <- runConsumers(consCtx, f, led, sched.of(killConsumer), filepath.Join(t.TempDir(), "processed"), log, w)
	}()

	// Producer: every message through the library's async pipeline; the
	// producer-side faults fire as it reaches them.
	const producerName = "faults-producer"
	in := newInjector(cluster, f.stream.Name, producerName)
	in.stealPort = sabotage == "steal-port"
	w.injector.Store(in)
	w.at("connecting the producer")
	p, err := hubflow.NewProducer(ctx, f.producer, hubflow.WithName(producerName), hubflow.WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	w.producer.Store(p)
	w.at("publishing")
	var firstErrs []string
	fired := 0
	producerFaults := append(sched.of(killLeader), sched.of(cutProducer)...)
	start := time.Now()
	for i := range n {
		// A steady rate, as a service publishes, so the faults land in the
		// middle of the stream of messages rather than after a burst.
		if i%50 == 0 {
			time.Sleep(time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(rate))))
		}
		for _, pf := range producerFaults {
			if pf.At == i {
				w.at(fmt.Sprintf("publishing: firing %s", pf))
				in.fire(pf)
				w.at("publishing")
				fired++
			}
		}
		m := hubflow.Msg{Data: strconv.AppendInt(nil, int64(i), 10)}
		if sem == hubflowv1.ExactlyOnce && i%2 == 0 {
			m.ID = fmt.Sprint("order-", i) // caller's key; odd numbers get a generated one
		}
		fut, err := p.PublishAsync(ctx, m)
		if err != nil {
			r.publishErrors++
			firstErrs = appendMax(firstErrs, err.Error())
			continue
		}
		w.futures[i].Store(fut)
		w.published.Store(int64(i + 1))
	}
	for i := range w.futures {
		fut := w.futures[i].Load()
		if fut == nil {
			continue
		}
		w.at(fmt.Sprintf("waiting for the acknowledgement of message %d", i))
		if _, err := fut.Wait(ctx); err != nil {
			r.publishErrors++
			firstErrs = appendMax(firstErrs, err.Error())
			continue
		}
		w.acked[i].Store(true)
		r.acked++
	}
	acked := w.ackedList()
	r.published = n
	r.producer = p.Stats()
	w.at("closing the producer")
	if err := p.Close(ctx); err != nil {
		t.Errorf("closing the producer: %v", err)
	}
	var faultErrs []error
	w.at("waiting for the faults to heal")
	r.faults, faultErrs = in.finish()

	// Wait until the durable has nothing left to deliver or to be
	// acknowledged, and the ledger has stopped moving.
	w.at("waiting for the consumer side to settle")
	waitSettled(ctx, t, js, f, led, acked)
	w.at("stopping the consumers")
	stopConsumers()
	res := <-consumed
	r.consumer, r.instances = res.stats, res.instances
	r.faults = append(r.faults, res.kills...)
	faultErrs = append(faultErrs, res.errs...)
	r.ledger = led.snapshot()
	r.lost = led.lost(acked)
	w.at("reading the stream back")
	if r.stream, err = auditStream(ctx, js, f.stream.Name, n); err != nil {
		t.Fatalf("reading the stream back: %v", err)
	}

	t.Logf("%s\n%s", sem, r.String(sem))
	if len(firstErrs) > 0 {
		t.Logf("first publish errors:\n  %s", strings.Join(firstErrs, "\n  "))
	}
	for _, err := range faultErrs {
		t.Errorf("fault not carried out: %v", err)
	}
	if fired != len(producerFaults) || len(res.kills) != len(sched.of(killConsumer)) {
		t.Errorf("%d of %d producer-side faults fired, %d of %d consumer kills: the run did not go through its schedule",
			fired, len(producerFaults), len(res.kills), len(sched.of(killConsumer)))
	}
	switch sem {
	case hubflowv1.ExactlyOnce:
		if r.publishErrors != 0 || r.lost != 0 || r.ledger.twice != 0 || r.stream.storedTwice != 0 {
			t.Errorf("ExactlyOnce broke its promise: %d publish errors, %d lost, %d processed twice, %d stored twice",
				r.publishErrors, r.lost, r.ledger.twice, r.stream.storedTwice)
		}
	case hubflowv1.AtLeastOnce:
		if r.publishErrors != 0 || r.lost != 0 {
			t.Errorf("AtLeastOnce broke its promise: %d publish errors, %d lost", r.publishErrors, r.lost)
		}
	case hubflowv1.AtMostOnce:
		if r.ledger.twice != 0 {
			t.Errorf("AtMostOnce broke its promise: %d messages processed twice", r.ledger.twice)
		}
		if r.ledger.distinct == 0 {
			t.Error("AtMostOnce processed nothing: the run proves nothing")
		}
	}
}

func (r report) String(sem hubflowv1.DeliverySemantic) string {
	var b strings.Builder
	fmt.Fprintf(&b, "  faults carried out:\n    %s\n", strings.Join(r.faults, "\n    "))
	if sem == hubflowv1.AtMostOnce {
		fmt.Fprintf(&b, "  producer: %d published fire-and-forget (no acknowledgements), %d publish errors\n", r.published, r.publishErrors)
	} else {
		fmt.Fprintf(&b, "  producer: %d published, %d acknowledged, %d publish errors; library: %d retries, %d duplicate acks\n",
			r.published, r.acked, r.publishErrors, r.producer.Retries, r.producer.Duplicates)
	}
	fmt.Fprintf(&b, "  stream (plain nats.go): %d stored, %d distinct, %d stored more than once, %d never stored\n",
		r.stream.stored, r.stream.distinct, r.stream.storedTwice, r.stream.missing)
	fmt.Fprintf(&b, "  consumer: %d instances, %d deliveries, %d handler runs, %d redeliveries skipped by the dedup record, %d acks lost\n",
		r.instances, r.consumer.Delivered, r.ledger.handled, r.consumer.Skipped, r.consumer.AckFailures)
	lost := "acknowledged to the producer, never processed"
	if sem == hubflowv1.AtMostOnce {
		lost = "published, never processed: allowed"
	}
	fmt.Fprintf(&b, "  ledger: %d distinct processed, %d LOST (%s), %d PROCESSED TWICE", r.ledger.distinct, r.lost, lost, r.ledger.twice)
	return b.String()
}

// waitSettled returns once the durable has delivered everything and has
// nothing awaiting an acknowledgement, and the ledger holds every
// acknowledged message (acknowledging semantics) or has stopped moving
// (AtMostOnce). With acked nil it waits for the ledger to stop moving only
// (waitQuiet).
func waitSettled(ctx context.Context, t *testing.T, js jetstream.JetStream, f *flow, led *ledger, acked []bool) {
	t.Helper()
	last, still := -1, 0
	for {
		info, err := durableInfo(ctx, js, f)
		c := led.snapshot()
		drained := err == nil && info.NumPending == 0 && info.NumAckPending == 0
		if drained && acked != nil && f.sem != hubflowv1.AtMostOnce && led.lost(acked) == 0 {
			return
		}
		if drained && c.handled == last {
			if still++; still >= 5 {
				return
			}
		} else {
			still = 0
		}
		last = c.handled
		select {
		case <-ctx.Done():
			t.Errorf("the consumer side did not settle: %v", context.Cause(ctx))
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func durableInfo(ctx context.Context, js jetstream.JetStream, f *flow) (*jetstream.ConsumerInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	c, err := js.Consumer(ctx, f.stream.Name, f.durable.Durable)
	if err != nil {
		return nil, err
	}
	return c.CachedInfo(), nil
}

// consumerResult is what the consumer side did over all its instances.
type consumerResult struct {
	stats     hubflow.ConsumerStats
	instances int
	kills     []string
	errs      []error
}

// runConsumers keeps one consumer instance running until ctx ends,
// replacing each killed instance with a new one, as a Deployment would.
// The ExactlyOnce instances share a dedup record file that each opens
// anew: what a crashed process leaves behind on its volume.
func runConsumers(ctx context.Context, f *flow, led *ledger, kills []fault, recordPath string, log *slog.Logger, w *watch) consumerResult {
	var res consumerResult
	var mu sync.Mutex // guards next and res.kills
	next := 0
	for ctx.Err() == nil {
		var opts []hubflow.ConsumerOption
		var killer *killingDedup
		var record *hubflow.FileDedup
		if (f.sem == hubflowv1.ExactlyOnce && !f.noDedup) || (f.fileDedup && f.sem != hubflowv1.AtMostOnce) {
			var err error
			// No fsync: the crash injected here is the process's, and the
			// page cache outlives a process.
			if record, err = hubflow.OpenFileDedup(recordPath, false); err != nil {
				res.errs = append(res.errs, err)
				return res
			}
			killer = &killingDedup{Dedup: record}
			opts = append(opts, hubflow.WithDedup(killer))
		}
		name := fmt.Sprintf("faults-consumer-%d", res.instances)
		party := &consumerParty{name: name, since: time.Now(), instance: res.instances + 1}
		if prev := w.consumer.Load(); prev != nil && prev.c == nil && prev.name == name {
			party.since, party.lastErr = prev.since, prev.lastErr
		}
		w.consumer.Store(party)
		startCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		opts = append(opts, f.consumerOpts...)
		c, err := hubflow.NewConsumer(startCtx, f.consumer, append(opts,
			hubflow.WithName(name), hubflow.WithConcurrency(4), hubflow.WithLogger(log))...)
		cancel()
		if err != nil {
			w.consumer.Store(&consumerParty{name: name, since: party.since, instance: party.instance, lastErr: err.Error()})
			if record != nil {
				record.Close()
			}
			time.Sleep(100 * time.Millisecond) // the durable's leader may be moving
			continue
		}
		res.instances++
		party = &consumerParty{name: name, c: c, since: time.Now(), instance: res.instances}
		w.consumer.Store(party)
		if killer != nil {
			killer.kill = c.Conn().Close
		}
		err = c.Run(ctx, func(_ context.Context, d *hubflow.Delivery) error {
			i, err := strconv.Atoi(string(d.Data))
			if err != nil {
				return hubflow.Poison(err)
			}
			led.process(i) // the side effect
			party.lastMsg.Store(int64(i))
			party.lastSeen.Store(time.Now().UnixNano())
			mu.Lock()
			due := next < len(kills) && i >= kills[next].At
			if due {
				res.kills = append(res.kills, fmt.Sprintf("%s: killed %s after handling message %d", kills[next], name, i))
				next++
			}
			mu.Unlock()
			if due {
				if killer != nil {
					killer.armed.Store(&d.IdempotencyKey) // after the dedup record, before the ack
				} else {
					c.Conn().Close() // after the side effect, before the ack
				}
			}
			return nil
		})
		st := c.Stats()
		res.stats = addStats(res.stats, st)
		c.Close(context.Background())
		if record != nil {
			record.Close()
		}
		if err == nil {
			return res // ctx ended: a graceful stop
		}
	}
	return res
}

func addStats(a, b hubflow.ConsumerStats) hubflow.ConsumerStats {
	a.Delivered += b.Delivered
	a.Processed += b.Processed
	a.HandlerErrors += b.HandlerErrors
	a.Acked += b.Acked
	a.AckFailures += b.AckFailures
	a.Naked += b.Naked
	a.Terminated += b.Terminated
	a.Skipped += b.Skipped
	a.Dropped += b.Dropped
	return a
}

func appendMax(list []string, s string) []string {
	if len(list) < 5 {
		list = append(list, s)
	}
	return list
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func envDuration(name string, def time.Duration) time.Duration {
	if v, err := time.ParseDuration(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// testWriter sends the library's error log to the test's log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
