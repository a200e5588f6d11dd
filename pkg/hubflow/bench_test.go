package hubflow

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// The benchmarks compare the library with raw nats.go doing the same thing,
// in the same run, against one in-process server (file storage; memory for
// AtMostOnce):
//
//	go test ./pkg/hubflow -run '^$' -bench . -benchtime 100000x -count 5
//
// Each reports lib-msgs/s, raw-msgs/s and lib/raw (the ratio of the two
// rates). Publish alternates raw and library rounds of 5,000 messages, each
// going first every other round, so both see the same machine state, and
// also reports lib/raw-median-round, the median over the paired rounds.

var semantics = []string{"AtMostOnce", "AtLeastOnce", "ExactlyOnce"}

const (
	benchPayload = 128
	benchWindow  = 4096 // both the raw async publisher and the library keep this many acks in flight
	benchRound   = 5000
)

func BenchmarkPublish(b *testing.B) {
	h := startHub(b)
	data := make([]byte, benchPayload)
	for _, sem := range semantics {
		b.Run(sem, func(b *testing.B) {
			ctx := context.Background()
			stream, subject := "BP_"+sem, "bp."+sem
			h.benchStream(b, stream, sem, subject)
			p, err := NewProducer(ctx, producerBinding(h.srv.URL(), stream, sem, subject), quiet(), WithMaxPending(benchWindow))
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close(ctx)
			nc, err := nats.Connect(h.srv.URL())
			if err != nil {
				b.Fatal(err)
			}
			defer nc.Close()
			js, _ := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(benchWindow))

			raw := func(n int) {
				for range n {
					var err error
					switch sem {
					case "AtMostOnce":
						err = nc.Publish(subject, data)
					case "AtLeastOnce":
						_, err = js.PublishAsync(subject, data)
					case "ExactlyOnce":
						_, err = js.PublishAsync(subject, data, jetstream.WithMsgID(nuid.Next()))
					}
					if err != nil {
						b.Fatal(err)
					}
				}
				if sem == "AtMostOnce" {
					if err := nc.Flush(); err != nil {
						b.Fatal(err)
					}
					return
				}
				<-js.PublishAsyncComplete()
			}
			lib := func(n int) {
				for range n {
					if _, err := p.PublishAsync(ctx, Msg{Data: data}); err != nil {
						b.Fatal(err)
					}
				}
				if err := p.Flush(ctx); err != nil {
					b.Fatal(err)
				}
			}
			var rawTime, libTime time.Duration
			var roundRatios []float64
			b.ResetTimer()
			timed := func(f func(int), n int) time.Duration {
				start := time.Now()
				f(n)
				return time.Since(start)
			}
			// Alternate which goes first: the server may still be storing
			// the previous round when the next starts.
			for round, left := 0, b.N; left > 0; round, left = round+1, left-benchRound {
				n := min(left, benchRound)
				var r, l time.Duration
				if round%2 == 0 {
					r = timed(raw, n)
					l = timed(lib, n)
				} else {
					l = timed(lib, n)
					r = timed(raw, n)
				}
				rawTime, libTime = rawTime+r, libTime+l
				roundRatios = append(roundRatios, r.Seconds()/l.Seconds())
			}
			b.StopTimer()
			if st := p.Stats(); st.Failed != 0 {
				b.Fatalf("library publishes failed: %+v", st)
			}
			report(b, rawTime, libTime)
			// A stall of either side (GC, the server's own work, another
			// process on a small machine) skews the total; the median of the
			// paired rounds does not.
			slices.Sort(roundRatios)
			b.ReportMetric(roundRatios[len(roundRatios)/2], "lib/raw-median-round")
		})
	}
}

func BenchmarkConsume(b *testing.B) {
	h := startHub(b)
	data := make([]byte, benchPayload)
	for _, sem := range semantics {
		b.Run(sem, func(b *testing.B) {
			ctx := context.Background()
			stream, subject := "BC_"+sem, "bc."+sem
			h.benchStream(b, stream, sem, subject)
			nc, err := nats.Connect(h.srv.URL())
			if err != nil {
				b.Fatal(err)
			}
			defer nc.Close()
			js, _ := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(benchWindow))
			for range b.N {
				if _, err := js.PublishAsync(subject, data, jetstream.WithMsgID(nuid.Next())); err != nil {
					b.Fatal(err)
				}
			}
			<-js.PublishAsyncComplete()
			rawName, libName := fmt.Sprint("raw", b.N), fmt.Sprint("lib", b.N)
			h.durable(b, stream, rawName, sem, time.Minute)
			h.durable(b, stream, libName, sem, time.Minute)

			b.ResetTimer()
			start := time.Now()
			cons, err := js.Consumer(ctx, stream, rawName)
			if err != nil {
				b.Fatal(err)
			}
			// The library's pull settings, so a stalled pull (seen on both
			// sides on a loaded machine) costs both the same to detect.
			it, err := cons.Messages(jetstream.PullMaxMessages(DefaultBatch),
				jetstream.PullExpiry(DefaultPullExpiry), jetstream.PullHeartbeat(DefaultPullExpiry/5))
			if err != nil {
				b.Fatal(err)
			}
			for i := 0; i < b.N; {
				m, err := it.Next()
				if errors.Is(err, jetstream.ErrNoHeartbeat) {
					continue // a busy machine; the iterator pulls again
				}
				if err != nil {
					b.Fatal(err)
				}
				i++
				switch sem {
				case "AtLeastOnce":
					err = m.Ack()
				case "ExactlyOnce":
					err = m.DoubleAck(ctx)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
			it.Stop()
			rawTime := time.Since(start)

			start = time.Now()
			c, err := NewConsumer(ctx, consumerBinding(h.srv.URL(), stream, libName, sem, time.Minute), quiet())
			if err != nil {
				b.Fatal(err)
			}
			runCtx, cancel := context.WithCancel(ctx)
			var seen atomic.Int64
			err = c.Run(runCtx, func(context.Context, *Delivery) error {
				if seen.Add(1) == int64(b.N) {
					cancel()
				}
				return nil
			})
			libTime := time.Since(start)
			cancel()
			c.Close()
			b.StopTimer()
			if err != nil {
				b.Fatal(err)
			}
			if st := c.Stats(); st.Processed != uint64(b.N) {
				b.Fatalf("library processed %d of %d: %+v", st.Processed, b.N, st)
			}
			report(b, rawTime, libTime)
		})
	}
}

func report(b *testing.B, rawTime, libTime time.Duration) {
	rawRate := float64(b.N) / rawTime.Seconds()
	libRate := float64(b.N) / libTime.Seconds()
	b.ReportMetric(rawRate, "raw-msgs/s")
	b.ReportMetric(libRate, "lib-msgs/s")
	b.ReportMetric(libRate/rawRate, "lib/raw")
}

// benchStream is a stream of sem's storage that keeps the latest 200k
// messages, so a long run does not fill the disk.
func (h *hub) benchStream(b *testing.B, name, sem, subject string) {
	b.Helper()
	cfg := jetstream.StreamConfig{Name: name, Subjects: []string{subject}, Storage: jetstream.FileStorage,
		MaxMsgs: 200_000, Discard: jetstream.DiscardOld}
	switch sem {
	case "AtMostOnce":
		cfg.Storage = jetstream.MemoryStorage
	case "ExactlyOnce":
		cfg.Duplicates = 2 * time.Minute
	}
	s, err := h.js.CreateOrUpdateStream(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	// The framework calls a benchmark more than once; start empty each time.
	if err := s.Purge(context.Background()); err != nil {
		b.Fatal(err)
	}
}
