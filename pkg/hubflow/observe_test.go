package hubflow

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// recorder is an Observer that injects a header on publish, as a tracer
// injects its context, and records what it was told.
type recorder struct {
	mu        sync.Mutex
	published []string // "<subject> <id> -> <sequence> <err>"
	handled   []string // "<traceparent seen> -> <err>"
}

type ctxMark struct{}

func (r *recorder) Publishing(_ context.Context, info PublishInfo, header nats.Header) func(Ack, error) {
	header.Set("Traceparent", "trace-of-"+header.Get("Payload"))
	return func(a Ack, err error) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.published = append(r.published, fmt.Sprintf("%s %s %s -> %d %v", info.Semantic, info.Stream, info.Subject, a.Sequence, err))
	}
}

func (r *recorder) Handling(ctx context.Context, info HandleInfo, d *Delivery) (context.Context, func(error)) {
	seen := d.Header.Get("Traceparent")
	return context.WithValue(ctx, ctxMark{}, seen), func(err error) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.handled = append(r.handled, fmt.Sprintf("%s %s %s -> %v", info.Semantic, info.Durable, seen, err))
	}
}

func (r *recorder) lists() ([]string, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.published...), append([]string(nil), r.handled...)
}

// An observer sees each publish once with its outcome, may write headers
// that travel with the message (and not into the caller's), and sees each
// handled delivery with those headers, gives the handler its context and
// gets the handler's result, a panic included.
func TestObserversSeePublishesAndHandlingWithTheirHeaders(t *testing.T) {
	h := startHub(t)
	for _, sem := range []string{"AtMostOnce", "AtLeastOnce", "ExactlyOnce"} {
		t.Run(sem, func(t *testing.T) {
			ctx := ctxT(t)
			stream := "O_" + sem
			h.stream(t, stream, sem, "o."+sem)
			h.durable(t, stream, "worker", sem, 5*time.Second)
			rec := &recorder{}
			p, err := NewProducer(ctx, producerBinding(h.srv.URL(), stream, sem, "o."+sem), quiet(), WithObserver(rec))
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close(ctx)
			callers := []nats.Header{{"Payload": {"a"}}, {"Payload": {"b"}}}
			if _, err := p.Publish(ctx, Msg{Data: []byte("a"), Header: callers[0]}); err != nil {
				t.Fatal(err)
			}
			f, err := p.PublishAsync(ctx, Msg{Data: []byte("b"), Header: callers[1]})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.Wait(ctx); err != nil {
				t.Fatal(err)
			}
			if err := p.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			for _, hd := range callers {
				if len(hd) != 1 {
					t.Errorf("the caller's header was written to: %v", hd)
				}
			}
			want := []string{fmt.Sprintf("%s %s o.%s -> 1 <nil>", sem, stream, sem), fmt.Sprintf("%s %s o.%s -> 2 <nil>", sem, stream, sem)}
			if sem == "AtMostOnce" {
				want = []string{fmt.Sprintf("%s %s o.%s -> 0 <nil>", sem, stream, sem), fmt.Sprintf("%s %s o.%s -> 0 <nil>", sem, stream, sem)}
			}
			if published, _ := rec.lists(); fmt.Sprint(published) != fmt.Sprint(want) {
				t.Errorf("publishes observed:\n  %q\nwant\n  %q", published, want)
			}

			c, err := NewConsumer(ctx, consumerBinding(h.srv.URL(), stream, "worker", sem, 5*time.Second), quiet(), WithObserver(rec))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close(context.Background())
			var mu sync.Mutex
			var handlerSaw []any
			calls := 0
			err = runConsumer(t, c, func(ctx context.Context, d *Delivery) error {
				mu.Lock()
				defer mu.Unlock()
				handlerSaw = append(handlerSaw, ctx.Value(ctxMark{}))
				calls++
				if string(d.Data) == "b" {
					panic("handler bug")
				}
				return nil
			}, func() bool { _, handled := rec.lists(); return len(handled) >= 2 })
			if err != nil {
				t.Fatal(err)
			}
			_, handled := rec.lists()
			want = []string{fmt.Sprintf("%s worker trace-of-a -> <nil>", sem), fmt.Sprintf("%s worker trace-of-b -> handler panicked: handler bug", sem)}
			if fmt.Sprint(handled[:2]) != fmt.Sprint(want) {
				t.Errorf("handling observed:\n  %q\nwant\n  %q", handled[:2], want)
			}
			mu.Lock()
			defer mu.Unlock()
			if fmt.Sprint(handlerSaw[:2]) != "[trace-of-a trace-of-b]" {
				t.Errorf("the handler got contexts carrying %v, want the observer's [trace-of-a trace-of-b]", handlerSaw)
			}
		})
	}
}

// An observer may return no end func: the client then calls nothing.
func TestObserverMayReturnNoEnd(t *testing.T) {
	end := publishing([]Observer{nilEnds{}}, context.Background(), PublishInfo{}, nats.Header{})
	end(Ack{}, errors.New("ignored"))
	ctx, done := handling([]Observer{nilEnds{}}, context.Background(), HandleInfo{}, &Delivery{})
	done(nil)
	if ctx == nil {
		t.Fatal("no context")
	}
}

type nilEnds struct{}

func (nilEnds) Publishing(context.Context, PublishInfo, nats.Header) func(Ack, error) { return nil }
func (nilEnds) Handling(ctx context.Context, _ HandleInfo, _ *Delivery) (context.Context, func(error)) {
	return ctx, nil
}
