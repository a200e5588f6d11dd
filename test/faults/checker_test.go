package faults

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ledger is the consumer's side effect: one count per message number each
// time a handler processed it. It lives in the test process, outside every
// consumer instance, like the database a real handler writes to.
type ledger struct {
	mu      sync.Mutex
	counts  []int
	handled int // handler runs, repeats included
}

func newLedger(n int) *ledger { return &ledger{counts: make([]int, n)} }

// process records one processing of message i.
func (l *ledger) process(i int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.counts[i]++
	l.handled++
}

// count is how many times message i was processed.
func (l *ledger) count(i int) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.counts[i]
}

// lostList is up to max of the messages lost() counts.
func (l *ledger) lostList(acked []bool, max int) []int {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []int
	for i, ok := range acked {
		if ok && l.counts[i] == 0 && len(out) < max {
			out = append(out, i)
		}
	}
	return out
}

type ledgerCounts struct {
	handled, distinct, twice int
}

func (l *ledger) snapshot() ledgerCounts {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := ledgerCounts{handled: l.handled}
	for _, n := range l.counts {
		if n > 0 {
			c.distinct++
		}
		if n > 1 {
			c.twice++
		}
	}
	return c
}

// lost counts the messages the producer had acknowledged that were never
// processed.
func (l *ledger) lost(acked []bool) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for i, ok := range acked {
		if ok && l.counts[i] == 0 {
			n++
		}
	}
	return n
}

// streamAudit is what the stream holds, read back with plain nats.go
// (an ordered consumer), independent of the library.
type streamAudit struct {
	stored, distinct, storedTwice, missing int
	copies                                 []int // by message number
}

func auditStream(ctx context.Context, js jetstream.JetStream, stream string, n int) (streamAudit, error) {
	var a streamAudit
	var copies []int
	err := retry(ctx, func() error {
		copies = make([]int, n)
		a = streamAudit{}
		oc, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{})
		if err != nil {
			return err
		}
		info, err := oc.Info(ctx)
		if err != nil {
			return err
		}
		total := int(info.NumPending)
		for a.stored < total {
			batch, err := oc.Fetch(min(total-a.stored, 1000), jetstream.FetchMaxWait(5*time.Second))
			if err != nil {
				return err
			}
			got := 0
			for m := range batch.Messages() {
				got++
				a.stored++
				i, err := strconv.Atoi(string(m.Data()))
				if err != nil || i < 0 || i >= n {
					return fmt.Errorf("stream holds a message that is not one of ours: %q", m.Data())
				}
				copies[i]++
			}
			if err := batch.Error(); err != nil {
				return err
			}
			if got == 0 {
				return fmt.Errorf("read %d of %d stored messages", a.stored, total)
			}
		}
		return nil
	})
	for _, c := range copies {
		switch {
		case c == 0:
			a.missing++
		case c > 1:
			a.storedTwice++
		}
		if c > 0 {
			a.distinct++
		}
	}
	a.copies = copies
	return a, err
}
