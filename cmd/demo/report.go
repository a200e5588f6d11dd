package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
	"github.com/hubflow/hubflow/internal/topology"
)

// consumerResult is what one consumer processed, counted by message number.
type consumerResult struct {
	name       string
	semantic   hubflowv1.DeliverySemantic
	received   int // handler calls
	duplicates int // handler calls for a message already processed
	caught     int // redeliveries the library's dedup record acknowledged without the handler
	lost       int // messages sent and never processed
}

// flowResult is one flow's traffic.
type flowResult struct {
	flow      flow
	sent      int // acknowledged (or, for AtMostOnce, attempted) publishes
	publish   []publishResult
	consumers []consumerResult
	// deadLetter is the message a consumer's bug rejected, for a flow with
	// a dead-letter Topic.
	deadLetter *deadLetterResult
}

// roundLatency keeps two or three significant digits, down to nanoseconds
// (an AtMostOnce publish takes well under a microsecond).
func roundLatency(d time.Duration) time.Duration {
	switch {
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	case d >= time.Microsecond:
		return d.Round(10 * time.Nanosecond)
	}
	return d
}

// publishCost is the flow's median healthy publish latency and its
// throughput over the whole run, faults included.
func (r flowResult) publishCost() (time.Duration, float64) {
	var latency, elapsed time.Duration
	for _, p := range r.publish {
		latency = max(latency, p.latency)
		elapsed += p.elapsed
	}
	if elapsed <= 0 {
		return latency, 0
	}
	return latency, float64(r.sent) / elapsed.Seconds()
}

// kept reports whether a consumer got what its semantic promises.
func (c consumerResult) kept() bool {
	switch c.semantic {
	case hubflowv1.ExactlyOnce:
		return c.lost == 0 && c.duplicates == 0
	case hubflowv1.AtLeastOnce:
		return c.lost == 0
	default:
		return c.duplicates == 0
	}
}

// report prints the per-flow table and the hub's connection count, and
// says whether every consumer kept its promise.
func report(ctx context.Context, p *platform, flows []flow, results []flowResult, fs *faults) bool {
	fmt.Println()
	if fs != nil {
		progress("faults that hit the flows")
		for _, line := range fs.log {
			fmt.Println("    " + line)
		}
		fmt.Println()
	}
	progress("results")
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "FLOW\tCONSUMER\tSEMANTIC\tEFFECTIVE\tSENT\tRECEIVED\tTWICE\tCAUGHT\tLOST\tPUBLISH p50\tMSG/S\tPROMISE")
	rateOf := func(rate float64) string {
		if fs != nil {
			return "paced" // the fault run publishes at one pace for all
		}
		return fmt.Sprintf("%.0f", rate)
	}
	all := true
	for _, r := range results {
		latency, rate := r.publishCost()
		for _, c := range r.consumers {
			effective := effectiveSemantic(ctx, p.env.Client, c.name)
			verdict := "kept"
			if !c.kept() {
				verdict, all = "BROKEN", false
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t%s\n", r.flow.file, c.name, c.semantic, effective,
				r.sent, c.received, c.duplicates, c.caught, c.lost, roundLatency(latency), rateOf(rate), verdict)
		}
	}
	_ = w.Flush()
	for _, r := range results {
		dl := r.deadLetter
		if dl == nil {
			continue
		}
		verdict := "kept"
		if !dl.kept() {
			verdict, all = "BROKEN", false
		}
		fmt.Printf("\nDEAD LETTER  %s: %s rejected message #%d %d time(s) as poison while its bug was in; hubflow set it aside %d time(s)\n"+
			"in Topic %s; replayed after the fix, %s processed it %d time(s) in all; %d letter(s) left. Promise %s.\n",
			r.flow.file, dl.route.consumer, dl.message, dl.rejected, dl.setAside, dl.route.topic, dl.route.consumer, dl.processed, dl.left, verdict)
		if len(dl.againBy) > 0 {
			fmt.Printf("The replay goes back into Topic %s, to every consumer of it: %s handled #%d a second time (counted TWICE).\n",
				r.flow.topic, strings.Join(dl.againBy, ", "), dl.message)
		}
	}
	fmt.Print(`
TWICE: handler calls for a message already handled. CAUGHT: redeliveries the consumer's dedup
record acknowledged without calling the handler. PUBLISH p50: median Publish call while the hub was
healthy; MSG/S: the producers' rate over the whole run (the fault run paces every producer alike).
  AtMostOnce  may lose (a killed consumer's fetched-ahead messages, a stopped memory stream) and never
              delivers twice; publishing does not wait for the stream, so it costs least.
  AtLeastOnce loses nothing; a message handled but not acknowledged before a crash, or a publish retried
              after a lost acknowledgement, is delivered again (TWICE), so handlers must tolerate repeats.
  ExactlyOnce loses nothing and handles each message once: message ids make retried publishes one copy,
              the dedup record catches the redelivery (CAUGHT); it costs a wait for the stream and a
              double acknowledgement per message.
`)

	fanouts := make([]topology.Fanout, len(flows))
	for i, f := range flows {
		fanouts[i] = topology.Fanout{Producers: len(f.producers), Consumers: len(f.consumers)}
	}
	wiring := topology.Count(fanouts)
	fmt.Printf(`
The hub: %d services, each with one connection to NATS (%d connections).
Wired to each other instead, these flows alone need %d point-to-point integrations, and a mesh
of %d services grows to %d; with the hub, a new service adds one connection, whatever exists.
`, wiring.Services, wiring.HubConnections, wiring.PointToPoint, wiring.Services, wiring.Mesh)
	return all
}

func effectiveSemantic(ctx context.Context, k8s client.Client, consumer string) hubflowv1.StatusSemantic {
	var c hubflowv1.Consumer
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: demoNamespace, Name: consumer}, &c); err != nil {
		return "?"
	}
	return c.Status.EffectiveSemantic
}
