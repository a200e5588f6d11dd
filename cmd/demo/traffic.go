package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
	"github.com/hubflow/hubflow/internal/semantic"
	"github.com/hubflow/hubflow/pkg/binding"
	"github.com/hubflow/hubflow/pkg/hubflow"
)

// runFlows runs every flow's producers and consumers through the bindings
// the operator wrote, one flow after another, and counts by message number
// what each consumer's handler processed. With fs, the same faults hit
// every flow while it runs.
func runFlows(ctx context.Context, p *platform, flows []flow, messages int, fs *faults) ([]flowResult, error) {
	var results []flowResult
	for _, f := range flows {
		progress("flow %s: %s sends %d messages on Topic %s (%s)", f.file, strings.Join(f.producers, ", "), messages, f.topic, f.semantic)
		r, err := runFlow(ctx, p, f, messages, fs)
		if err != nil {
			return nil, fmt.Errorf("flow %s: %w", f.file, err)
		}
		results = append(results, r)
	}
	return results, nil
}

// tally counts a consumer's handler calls per message number.
type tally struct {
	mu    sync.Mutex
	seen  map[int]int
	calls int
}

func (t *tally) add(n int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.seen[n]++
	t.calls++
}

func (t *tally) distinct() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.seen)
}

// consumerRun is one Consumer's instances over a flow: a crashed instance
// is replaced, as a Deployment replaces a crashed pod.
type consumerRun struct {
	name    string
	sem     hubflowv1.DeliverySemantic
	tally   *tally
	skipped uint64 // redeliveries the library's dedup record caught
	done    chan error
	// current is the running instance and instance counts them, for the
	// report on a deadline.
	current  atomic.Pointer[hubflow.Consumer]
	instance atomic.Int32
	// While bug is set, the handler rejects message number poison as
	// poison (hubflow.Poison), as a handler with a bug would; poison is -1
	// for a consumer without the bug. rejected counts those calls, and
	// replayKey is the idempotency key of the call that processed it.
	poison    int
	bug       atomic.Bool
	rejected  atomic.Int32
	replayKey atomic.Pointer[string]
}

// state says what a consumer stuck on a deadline was doing.
func (run *consumerRun) state() string {
	c := run.current.Load()
	if c == nil {
		return fmt.Sprintf("instance %d not connected", run.instance.Load())
	}
	return fmt.Sprintf("instance %d: %+v, connected %v", run.instance.Load(), c.Stats(), c.Conn().IsConnected())
}

func runFlow(ctx context.Context, p *platform, f flow, messages int, fs *faults) (flowResult, error) {
	r := flowResult{flow: f}
	k8s := p.env.Client
	cctx, stopConsumers := context.WithCancel(ctx)
	defer stopConsumers()

	var consumers []*consumerRun
	var buggy *consumerRun // the consumer whose dead letters the flow shows
	for _, name := range f.consumers {
		b, err := readBinding(ctx, k8s, name)
		if err != nil {
			return r, err
		}
		run := &consumerRun{name: name, sem: hubflowv1.DeliverySemantic(b.Semantic), tally: &tally{seen: map[int]int{}}, done: make(chan error, 1), poison: -1}
		if f.deadLetter != nil && f.deadLetter.consumer == name {
			run.poison = poisonMessage(messages)
			run.bug.Store(true)
			buggy = run
			fmt.Printf("    %s's handler has a bug: it rejects message #%d as poison (hubflow.Poison)\n", name, run.poison)
		}
		killAt := -1
		if fs != nil {
			killAt = messages / 2
		}
		go func() { run.done <- run.instances(cctx, b, filepath.Join(p.dir, name+".dedup"), killAt, fs) }()
		consumers = append(consumers, run)
	}

	// The services run before traffic starts, as they would in production.
	for _, c := range consumers {
		deadline := time.Now().Add(30 * time.Second)
		for c.current.Load() == nil && time.Now().Before(deadline) && ctx.Err() == nil {
			time.Sleep(10 * time.Millisecond)
		}
	}
	stream := semantic.StreamName(demoNamespace, f.topic)
	for _, name := range f.producers {
		pr, err := produce(ctx, k8s, name, messages, stream, fs)
		r.sent += pr.sent
		r.publish = append(r.publish, pr)
		if err != nil {
			return r, fmt.Errorf("producer %s: %w", name, err)
		}
	}

	// Wait until every consumer has seen every acknowledged message (but
	// the one its bug rejects), or, for one that may lose messages, until
	// it has been quiet for a while.
	for _, c := range consumers {
		want := r.sent
		if c.poison >= 0 {
			want--
		}
		if err := c.waitProcessed(ctx, want, r.sent); err != nil {
			return r, err
		}
	}
	if buggy != nil {
		dl, err := setAsideAndReplay(ctx, p, f, buggy, r.sent)
		r.deadLetter = dl
		if err != nil {
			return r, fmt.Errorf("dead letters of %s: %w", buggy.name, err)
		}
	}
	// A moment for late redeliveries, which count as duplicates: in the
	// fault run, longer than the ack wait of the acknowledged consumers, so
	// the message a killed instance did not acknowledge comes back.
	settle := 500 * time.Millisecond
	if fs != nil {
		settle = faultAckWait + time.Second
	}
	time.Sleep(settle)
	stopConsumers()
	for _, c := range consumers {
		if err := <-c.done; err != nil && !errors.Is(err, context.Canceled) {
			return r, fmt.Errorf("consumer %s: %w", c.name, err)
		}
		c.tally.mu.Lock()
		res := consumerResult{name: c.name, semantic: c.sem, received: c.tally.calls, caught: int(c.skipped)}
		if dl := r.deadLetter; dl != nil {
			if c == buggy {
				dl.processed = c.tally.seen[dl.message]
			} else if c.tally.seen[dl.message] > 1 {
				dl.againBy = append(dl.againBy, c.name)
			}
		}
		for n := range r.sent {
			switch k := c.tally.seen[n]; {
			case k == 0:
				res.lost++
			case k > 1:
				res.duplicates += k - 1
			}
		}
		c.tally.mu.Unlock()
		r.consumers = append(r.consumers, res)
	}
	return r, nil
}

// instances runs the consumer until ctx ends, replacing each instance that
// stops. With killAt ≥ 0 the first instance is killed once, after its
// handler processed a message numbered killAt or above and before the
// library acknowledged it, with whatever it fetched ahead.
// An ExactlyOnce consumer keeps its dedup record in a file each instance
// opens anew: what a crashed pod leaves on its volume.
func (run *consumerRun) instances(ctx context.Context, b binding.Binding, recordPath string, killAt int, fs *faults) error {
	var killed atomic.Bool
	for instance := 0; ctx.Err() == nil; instance++ {
		opts := []hubflow.ConsumerOption{hubflow.WithName(fmt.Sprintf("%s-%d", run.name, instance)), hubflow.WithLogger(clientLog)}
		var record *hubflow.FileDedup
		if b.IdempotencyKey {
			var err error
			if record, err = hubflow.OpenFileDedup(recordPath, false); err != nil {
				return err
			}
			opts = append(opts, hubflow.WithDedup(record))
		}
		run.instance.Store(int32(instance))
		startCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		c, err := hubflow.NewConsumer(startCtx, b, opts...)
		cancel()
		if err != nil {
			if record != nil {
				record.Close()
			}
			// The durable may be moving to another node, or being recreated.
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(200 * time.Millisecond):
			}
			continue
		}
		run.current.Store(c)
		err = c.Run(ctx, func(_ context.Context, d *hubflow.Delivery) error {
			n, err := messageNumber(d.Data)
			if err != nil {
				return hubflow.Poison(err)
			}
			if n == run.poison {
				if run.bug.Load() {
					run.rejected.Add(1)
					return hubflow.Poison(fmt.Errorf("the handler's bug reads message #%d as malformed", n))
				}
				run.replayKey.Store(&d.IdempotencyKey)
			}
			run.tally.add(n)
			if killAt >= 0 && n >= killAt && killed.CompareAndSwap(false, true) {
				st := c.Stats()
				fs.note("killed consumer %s after it handled message %d, before its acknowledgement (%d more fetched ahead)",
					run.name, n, st.Delivered-min(st.Delivered, st.Processed+1))
				c.Conn().Close()
			}
			return nil
		})
		run.current.Store(nil)
		atomic.AddUint64(&run.skipped, c.Stats().Skipped)
		c.Close(context.Background())
		if record != nil {
			record.Close()
		}
		if err == nil || ctx.Err() != nil {
			return nil
		}
	}
	return nil
}

// waitProcessed waits until the consumer has processed want distinct
// messages of the sent ones, or, for one that may lose messages, until it
// has been quiet for a while.
func (run *consumerRun) waitProcessed(ctx context.Context, want, sent int) error {
	last, lastChange := -1, time.Now()
	for {
		got := run.tally.distinct()
		if got >= want {
			return nil
		}
		if got != last {
			last, lastChange = got, time.Now()
		}
		if run.sem == hubflowv1.AtMostOnce && time.Since(lastChange) > 3*time.Second {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("consumer %s processed %d of %d messages (%s): %w", run.name, got, sent, run.state(), ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// poisonMessage is the message a buggy handler rejects: a quarter of the
// way through, before the fault run kills the consumer at half, so the
// kill and the poison do not meet.
func poisonMessage(messages int) int { return messages / 4 }

// publishResult is what one producer sent and what it cost.
type publishResult struct {
	name string
	sent int
	// latency is the median time a Publish call took while the hub was
	// healthy (the first messages, one at a time): the price of waiting
	// for the stream, or not.
	latency time.Duration
	elapsed time.Duration // all messages, faults included
}

// faultPace is the time between two publishes in the fault run.
const faultPace = time.Millisecond

// warmup is how many messages each producer publishes one at a time to
// measure the healthy publish latency.
const warmup = 50

// produce publishes numbered messages through a producer's binding and
// returns how many the hub accepted (for AtMostOnce: how many were sent).
// With fs, its connection is cut a third of the way through and the
// stream's leader stopped at two thirds.
func produce(ctx context.Context, k8s client.Client, name string, messages int, stream string, fs *faults) (publishResult, error) {
	res := publishResult{name: name}
	b, err := readBinding(ctx, k8s, name)
	if err != nil {
		return res, err
	}
	p, err := hubflow.NewProducer(ctx, b, hubflow.WithName(name), hubflow.WithLogger(clientLog))
	if err != nil {
		return res, err
	}
	msg := func(n int) hubflow.Msg {
		m := hubflow.Msg{Data: fmt.Appendf(nil, "%s #%d", name, n)}
		if b.MessageID {
			// A business key (a payment id) as the idempotency key: the same
			// payment published twice is stored once.
			m.ID = fmt.Sprintf("%s-%d", name, n)
		}
		return m
	}
	start := time.Now()
	var latencies []time.Duration
	failed := 0
	for n := range min(warmup, messages) {
		t := time.Now()
		if _, err := p.Publish(ctx, msg(n)); err != nil {
			failed++
		}
		latencies = append(latencies, time.Since(t))
	}
	slices.Sort(latencies)
	if len(latencies) > 0 {
		res.latency = latencies[len(latencies)/2]
	}
	var injected sync.WaitGroup
	futures := make([]*hubflow.Future, 0, messages)
	for n := min(warmup, messages); n < messages; n++ {
		if fs != nil && n == messages/3 {
			fs.cutConnections(name)
		}
		if fs != nil && n == 2*messages/3 {
			injected.Go(func() { fs.stopLeader(stream, time.Second) })
		}
		fut, err := p.PublishAsync(ctx, msg(n))
		if err != nil {
			return res, err
		}
		futures = append(futures, fut)
		if fs != nil {
			// One pace for every semantic, so each fault lands at the same
			// point of every flow's traffic, not after an AtMostOnce
			// producer has sent everything in a millisecond.
			time.Sleep(faultPace)
		}
	}
	for _, fut := range futures {
		if _, err := fut.Wait(ctx); err != nil {
			failed++
		}
	}
	injected.Wait()
	res.elapsed = time.Since(start)
	res.sent = messages - failed
	if err := p.Close(ctx); err != nil {
		return res, err
	}
	if failed > 0 && b.WaitForAck {
		return res, fmt.Errorf("%d of %d publishes failed", failed, messages)
	}
	return res, nil
}

// readBinding reads the binding Secret the operator wrote for a Producer
// or Consumer (named in its status), as a workload mounting it would see it.
func readBinding(ctx context.Context, k8s client.Client, name string) (binding.Binding, error) {
	ref, err := bindingRef(ctx, k8s, name)
	if err != nil {
		return binding.Binding{}, err
	}
	var secret corev1.Secret
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: demoNamespace, Name: ref}, &secret); err != nil {
		return binding.Binding{}, fmt.Errorf("binding of %s: %w", name, err)
	}
	return binding.Decode(secret.Data)
}

// bindingRef is the binding Secret named in a Producer's or Consumer's status.
func bindingRef(ctx context.Context, k8s client.Client, name string) (string, error) {
	key := client.ObjectKey{Namespace: demoNamespace, Name: name}
	var p hubflowv1.Producer
	if err := k8s.Get(ctx, key, &p); err == nil {
		if p.Status.Binding == nil {
			return "", fmt.Errorf("producer %s has no binding yet: %+v", name, p.Status.Conditions)
		}
		return p.Status.Binding.Name, nil
	}
	var c hubflowv1.Consumer
	if err := k8s.Get(ctx, key, &c); err != nil {
		return "", err
	}
	if c.Status.Binding == nil {
		return "", fmt.Errorf("consumer %s has no binding yet: %+v", name, c.Status.Conditions)
	}
	return c.Status.Binding.Name, nil
}

func messageNumber(data []byte) (int, error) {
	s := string(data)
	i := strings.LastIndexByte(s, '#')
	if i < 0 {
		return 0, fmt.Errorf("no message number in %q", s)
	}
	return strconv.Atoi(s[i+1:])
}
