package main

import (
	"context"
	"fmt"
	"os"
	"text/tabwriter"

	"sigs.k8s.io/controller-runtime/pkg/client"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
)

// consumerResult is what one consumer processed, counted by message number.
type consumerResult struct {
	name       string
	semantic   hubflowv1.DeliverySemantic
	received   int // handler calls
	duplicates int // handler calls for a message already processed
	lost       int // messages sent and never processed
}

// flowResult is one flow's traffic.
type flowResult struct {
	flow      flow
	sent      int // acknowledged (or, for AtMostOnce, attempted) publishes
	consumers []consumerResult
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
func report(ctx context.Context, p *platform, flows []flow, results []flowResult) bool {
	fmt.Println()
	progress("results")
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "FLOW\tTOPIC\tCONSUMER\tSEMANTIC\tEFFECTIVE\tSENT\tRECEIVED\tDUPLICATES\tLOST\tPROMISE")
	all := true
	for _, r := range results {
		for _, c := range r.consumers {
			effective := effectiveSemantic(ctx, p.env.Client, c.name)
			verdict := "kept"
			if !c.kept() {
				verdict, all = "BROKEN", false
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\n", r.flow.file, r.flow.topic, c.name, c.semantic, effective,
				r.sent, c.received, c.duplicates, c.lost, verdict)
		}
	}
	_ = w.Flush()

	services, links := 0, 0
	for _, f := range flows {
		services += len(f.producers) + len(f.consumers)
		links += len(f.producers) * len(f.consumers)
	}
	fmt.Printf(`
The hub: %d services, each with one connection to NATS (%d connections).
Wired to each other instead, these flows alone need %d point-to-point integrations, and a mesh
of %d services grows to %d; with the hub, a new service adds one connection, whatever exists.
`, services, services, links, services, services*(services-1)/2)
	return all
}

func effectiveSemantic(ctx context.Context, k8s client.Client, consumer string) hubflowv1.StatusSemantic {
	var c hubflowv1.Consumer
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: demoNamespace, Name: consumer}, &c); err != nil {
		return "?"
	}
	return c.Status.EffectiveSemantic
}
