package faults

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// faultKind is what goes wrong.
type faultKind int

const (
	// killLeader stops the node leading the stream and starts it again
	// after a downtime, on the same port and store.
	killLeader faultKind = iota
	// cutProducer makes the server drop the producer's connection, as a
	// network cut would, in the middle of its batch of async publishes.
	cutProducer
	// killConsumer closes the consumer's connection after it handled a
	// message and before it acknowledged it; a new consumer instance takes
	// over, as a restarted pod would.
	killConsumer
)

func (k faultKind) String() string {
	return [...]string{"kill stream leader", "cut producer connection", "kill consumer between handling and ack"}[k]
}

// fault is one scheduled fault. Producer-side faults fire when the producer
// is about to publish message At; killConsumer fires when the consumer
// first handles a message numbered At or more.
type fault struct {
	Kind     faultKind
	At       int
	Downtime time.Duration // killLeader only
}

func (f fault) String() string {
	if f.Kind == killLeader {
		return fmt.Sprintf("%s before message %d (down %s)", f.Kind, f.At, f.Downtime)
	}
	if f.Kind == killConsumer {
		return fmt.Sprintf("%s at message %d", f.Kind, f.At)
	}
	return fmt.Sprintf("%s before message %d", f.Kind, f.At)
}

// schedule draws the faults of one run from seed: every run with the same
// seed and message count injects the same faults at the same points.
type schedule []fault

func newSchedule(seed uint64, n int) schedule {
	rng := rand.New(rand.NewPCG(seed, 0x6875626677))
	at := func(lo, hi float64) int { return int(lo*float64(n)) + rng.IntN(int((hi-lo)*float64(n))) }
	s := schedule{
		// Two leader kills, far enough apart that the first has healed.
		{Kind: killLeader, At: at(0.10, 0.30), Downtime: time.Duration(300+rng.IntN(1200)) * time.Millisecond},
		{Kind: killLeader, At: at(0.55, 0.75), Downtime: time.Duration(300+rng.IntN(1200)) * time.Millisecond},
	}
	for range 3 {
		s = append(s, fault{Kind: cutProducer, At: at(0.05, 0.95)})
	}
	for range 3 {
		s = append(s, fault{Kind: killConsumer, At: at(0.05, 0.90)})
	}
	slices.SortStableFunc(s, func(a, b fault) int { return a.At - b.At })
	return s
}

func (s schedule) of(kind faultKind) []fault {
	var out []fault
	for _, f := range s {
		if f.Kind == kind {
			out = append(out, f)
		}
	}
	return out
}

func (s schedule) String() string {
	lines := make([]string, len(s))
	for i, f := range s {
		lines[i] = "  " + f.String()
	}
	return strings.Join(lines, "\n")
}
