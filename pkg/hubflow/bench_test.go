package hubflow

import (
	"context"
	"fmt"
	"slices"
	"strings"
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

// Consume runs in rounds of benchConsumeRound messages: each round stores
// its messages afresh, gives each side a durable of its own over them, and
// runs the two sides one after the other, each going first every other
// round. A side's time runs from connecting to the last message handled and
// acknowledged (the library's Run returned).
const benchConsumeRound = 20_000

func BenchmarkConsume(b *testing.B) {
	h := startHub(b)
	for _, sem := range semantics {
		b.Run(sem, func(b *testing.B) {
			h.consumeRounds(b, "BC_"+sem, sem,
				consumeSide{name: "raw", run: rawConsume(sem)},
				consumeSide{name: "lib", run: libConsume(sem, nil)})
		})
	}
}

// BenchmarkConsumeExactlyOnce compares the library's ExactlyOnce consumer
// (double acks, with and without a dedup record) with its AtLeastOnce
// consumer (plain acks) over the same stream in the same run: the price of
// the confirmed acknowledgement and of the record.
func BenchmarkConsumeExactlyOnce(b *testing.B) {
	h := startHub(b)
	variants := []struct {
		name  string
		dedup func(b *testing.B) Dedup
	}{
		{"no-dedup", nil},
		{"memory-dedup", func(*testing.B) Dedup { return NewMemoryDedup(1 << 20) }},
		{"file-dedup-sync", func(b *testing.B) Dedup {
			d, err := OpenFileDedup(b.TempDir()+"/processed", true)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() {
				d.mu.Lock()
				keys, commits := len(d.keys), max(d.commits, 1)
				d.mu.Unlock()
				b.ReportMetric(float64(keys)/float64(commits), "keys/fsync")
				d.Close()
			})
			return d
		}},
	}
	for _, v := range variants {
		b.Run(v.name, func(b *testing.B) {
			h.consumeRounds(b, "BCE", "ExactlyOnce",
				consumeSide{name: "alo", run: libConsume("AtLeastOnce", nil)},
				consumeSide{name: "eo", run: libConsume("ExactlyOnce", v.dedup)})
		})
	}
}

// consumeSide consumes n messages through durable and returns how long it
// took.
type consumeSide struct {
	name string
	run  func(b *testing.B, url, stream, durable string, n int) time.Duration
}

// consumeRounds runs base and other over the same messages, round by round,
// and reports both rates, other/base over the whole run and the median of
// the rounds' ratios.
func (h *hub) consumeRounds(b *testing.B, stream, sem string, base, other consumeSide) {
	ctx := context.Background()
	subject := strings.ToLower(stream) + "." + sem
	h.benchStream(b, stream, sem, subject)
	js, _ := jetstream.New(h.nc, jetstream.WithPublishAsyncMaxPending(benchWindow))
	data := make([]byte, benchPayload)
	var times [2]time.Duration
	var roundRatios []float64
	b.ResetTimer()
	for round, left := 0, b.N; left > 0; round, left = round+1, left-benchConsumeRound {
		n := min(left, benchConsumeRound)
		b.StopTimer()
		s, err := js.Stream(ctx, stream)
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Purge(ctx); err != nil {
			b.Fatal(err)
		}
		for range n {
			// The stream may still be storing what came before: wait for it.
			if _, err := js.PublishAsync(subject, data, jetstream.WithMsgID(nuid.Next()), jetstream.WithStallWait(time.Minute)); err != nil {
				b.Fatal(err)
			}
		}
		<-js.PublishAsyncComplete()
		sides := []consumeSide{base, other}
		for _, side := range sides {
			h.durable(b, stream, fmt.Sprint(side.name, round), sem, time.Minute)
		}
		b.StartTimer()
		var t [2]time.Duration
		for i := range sides {
			k := (i + round) % 2 // which side goes first alternates
			t[k] = sides[k].run(b, h.srv.URL(), stream, fmt.Sprint(sides[k].name, round), n)
		}
		b.StopTimer()
		for _, side := range sides {
			if err := js.DeleteConsumer(ctx, stream, fmt.Sprint(side.name, round)); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		times[0], times[1] = times[0]+t[0], times[1]+t[1]
		roundRatios = append(roundRatios, t[0].Seconds()/t[1].Seconds())
	}
	b.StopTimer()
	baseRate, otherRate := float64(b.N)/times[0].Seconds(), float64(b.N)/times[1].Seconds()
	b.ReportMetric(baseRate, base.name+"-msgs/s")
	b.ReportMetric(otherRate, other.name+"-msgs/s")
	b.ReportMetric(otherRate/baseRate, other.name+"/"+base.name)
	slices.Sort(roundRatios)
	b.ReportMetric(roundRatios[len(roundRatios)/2], other.name+"/"+base.name+"-median-round")
}

// rawConsume is a plain nats.go pull consumer acknowledging as sem says,
// with the library's pull settings, so a stalled pull (seen on both sides
// on a loaded machine) costs both the same to detect.
func rawConsume(sem string) func(b *testing.B, url, stream, durable string, n int) time.Duration {
	return func(b *testing.B, url, stream, durable string, n int) time.Duration {
		ctx := context.Background()
		start := time.Now()
		nc, err := nats.Connect(url)
		if err != nil {
			b.Fatal(err)
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			b.Fatal(err)
		}
		cons, err := js.Consumer(ctx, stream, durable)
		if err != nil {
			b.Fatal(err)
		}
		done := make(chan struct{})
		var seen int
		var failed atomic.Pointer[error]
		cc, err := cons.Consume(func(m jetstream.Msg) {
			var err error
			switch sem {
			case "AtLeastOnce":
				err = m.Ack()
			case "ExactlyOnce":
				err = m.DoubleAck(ctx)
			}
			if err != nil {
				failed.CompareAndSwap(nil, &err)
			}
			if seen++; seen == n {
				close(done)
			}
		}, jetstream.PullMaxMessages(DefaultBatch),
			jetstream.PullExpiry(DefaultPullExpiry), jetstream.PullHeartbeat(DefaultPullExpiry/5))
		if err != nil {
			b.Fatal(err)
		}
		<-done
		cc.Stop()
		nc.Close()
		elapsed := time.Since(start)
		if err := failed.Load(); err != nil {
			b.Fatal(*err)
		}
		return elapsed
	}
}

// libConsume is the library's Consumer of sem with its defaults, and a
// fresh dedup record per round when dedup is set.
func libConsume(sem string, dedup func(*testing.B) Dedup) func(b *testing.B, url, stream, durable string, n int) time.Duration {
	return func(b *testing.B, url, stream, durable string, n int) time.Duration {
		ctx := context.Background()
		opts := []ConsumerOption{quiet()}
		if dedup != nil {
			opts = append(opts, WithDedup(dedup(b)))
		}
		start := time.Now()
		c, err := NewConsumer(ctx, consumerBinding(url, stream, durable, sem, time.Minute), opts...)
		if err != nil {
			b.Fatal(err)
		}
		runCtx, cancel := context.WithCancel(ctx)
		defer cancel()
		var seen atomic.Int64
		err = c.Run(runCtx, func(context.Context, *Delivery) error {
			if seen.Add(1) == int64(n) {
				cancel()
			}
			return nil
		})
		c.Close(context.Background())
		elapsed := time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		st := c.Stats()
		if st.Processed != uint64(n) || sem != "AtMostOnce" && st.Acked != uint64(n) {
			b.Fatalf("library processed %d and acknowledged %d of %d: %+v", st.Processed, st.Acked, n, st)
		}
		return elapsed
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
