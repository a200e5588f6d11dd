package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
	"github.com/hubflow/hubflow/pkg/binding"
	"github.com/hubflow/hubflow/pkg/hubflow"
)

// runFlows runs every flow's producers and consumers through the bindings
// the operator wrote, one flow after another, and counts by message number
// what each consumer's handler processed.
func runFlows(ctx context.Context, p *platform, flows []flow, messages int) ([]flowResult, error) {
	var results []flowResult
	for _, f := range flows {
		progress("flow %s: %s sends %d messages on Topic %s (%s)", f.file, strings.Join(f.producers, ", "), messages, f.topic, f.semantic)
		r, err := runFlow(ctx, p.env.Client, f, messages)
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

func runFlow(ctx context.Context, k8s client.Client, f flow, messages int) (flowResult, error) {
	r := flowResult{flow: f}
	cctx, stopConsumers := context.WithCancel(ctx)
	defer stopConsumers()

	type running struct {
		name  string
		sem   hubflowv1.DeliverySemantic
		tally *tally
		done  chan error
	}
	var consumers []*running
	for _, name := range f.consumers {
		b, err := readBinding(ctx, k8s, name)
		if err != nil {
			return r, err
		}
		opts := []hubflow.Option{hubflow.WithName(name)}
		if b.IdempotencyKey {
			// The handler's side effect is recorded by idempotency key, so a
			// redelivery after a lost acknowledgement is not processed twice.
			opts = append(opts, hubflow.WithDedup(hubflow.NewMemoryDedup(4*messages)))
		}
		c, err := hubflow.NewConsumer(ctx, b, opts...)
		if err != nil {
			return r, fmt.Errorf("consumer %s: %w", name, err)
		}
		defer c.Close()
		run := &running{name: name, sem: hubflowv1.DeliverySemantic(b.Semantic), tally: &tally{seen: map[int]int{}}, done: make(chan error, 1)}
		go func() {
			run.done <- c.Run(cctx, func(_ context.Context, d *hubflow.Delivery) error {
				n, err := messageNumber(d.Data)
				if err != nil {
					return hubflow.Poison(err)
				}
				run.tally.add(n)
				return nil
			})
		}()
		consumers = append(consumers, run)
	}

	for _, name := range f.producers {
		sent, err := produce(ctx, k8s, name, messages)
		r.sent += sent
		if err != nil {
			return r, fmt.Errorf("producer %s: %w", name, err)
		}
	}

	// Wait until every consumer has seen every acknowledged message, or, for
	// one that may lose messages, until it has been quiet for a while.
	for _, c := range consumers {
		last, lastChange := -1, time.Now()
		for {
			got := c.tally.distinct()
			if got >= r.sent {
				break
			}
			if got != last {
				last, lastChange = got, time.Now()
			}
			if c.sem == hubflowv1.AtMostOnce && time.Since(lastChange) > 3*time.Second {
				break
			}
			select {
			case <-ctx.Done():
				return r, fmt.Errorf("consumer %s processed %d of %d messages: %w", c.name, got, r.sent, ctx.Err())
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	// A moment for late redeliveries, which count as duplicates.
	time.Sleep(500 * time.Millisecond)
	stopConsumers()
	for _, c := range consumers {
		if err := <-c.done; err != nil && !errors.Is(err, context.Canceled) {
			return r, fmt.Errorf("consumer %s: %w", c.name, err)
		}
		c.tally.mu.Lock()
		res := consumerResult{name: c.name, semantic: c.sem, received: c.tally.calls}
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

// produce publishes numbered messages through a producer's binding and
// returns how many the hub accepted (for AtMostOnce: how many were sent).
func produce(ctx context.Context, k8s client.Client, name string, messages int) (int, error) {
	b, err := readBinding(ctx, k8s, name)
	if err != nil {
		return 0, err
	}
	p, err := hubflow.NewProducer(ctx, b, hubflow.WithName(name))
	if err != nil {
		return 0, err
	}
	futures := make([]*hubflow.Future, 0, messages)
	for n := range messages {
		msg := hubflow.Msg{Data: fmt.Appendf(nil, "%s #%d", name, n)}
		if b.MessageID {
			// A business key (a payment id) as the idempotency key: the same
			// payment published twice is stored once.
			msg.ID = fmt.Sprintf("%s-%d", name, n)
		}
		fut, err := p.PublishAsync(ctx, msg)
		if err != nil {
			return 0, err
		}
		futures = append(futures, fut)
	}
	sent := 0
	for _, fut := range futures {
		if _, err := fut.Wait(ctx); err == nil {
			sent++
		}
	}
	if err := p.Close(ctx); err != nil {
		return sent, err
	}
	if sent != messages {
		return sent, fmt.Errorf("%d of %d publishes failed", messages-sent, messages)
	}
	return sent, nil
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
