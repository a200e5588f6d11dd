// Command demo runs hubflow's main job end to end on one machine, with no
// cluster: a local kube-apiserver and etcd, a three-node NATS JetStream
// cluster on loopback, the hubflow manager, the sample flows of
// config/samples, and their example producers and consumers talking through
// the bindings the operator wrote. It prints what each flow sent and
// received and exits 0 only if every flow kept its promise.
//
//	make demo             # or: go run ./cmd/demo
//	make demo ARGS=--keep # leave everything running to explore with kubectl
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
)

type options struct {
	keep     bool
	messages int
	timeout  time.Duration
}

func main() {
	var o options
	flag.BoolVar(&o.keep, "keep", os.Getenv("HUBFLOW_DEMO_KEEP") != "", "Leave everything running after the report (also HUBFLOW_DEMO_KEEP=1); Ctrl-C stops it.")
	flag.IntVar(&o.messages, "messages", 1000, "Messages each producer sends.")
	flag.DurationVar(&o.timeout, "timeout", 5*time.Minute, "Give up when the flows have not finished by then.")
	flag.Parse()
	// The manager's own logs would drown the demo's progress lines; set
	// HUBFLOW_DEMO_LOG=1 to see them.
	ctrl.SetLogger(logr.Discard())
	if os.Getenv("HUBFLOW_DEMO_LOG") != "" {
		ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr)))
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	kept, err := run(ctx, o)
	switch {
	case err != nil:
		fmt.Fprintf(os.Stderr, "\ndemo failed: %v\n", err)
		os.Exit(1)
	case !kept:
		fmt.Println("\nA flow broke its promise: see the table above.")
		os.Exit(1)
	}
}

// run starts everything, runs the flows, reports, and stops everything it
// started before returning, also on Ctrl-C.
func run(ctx context.Context, o options) (bool, error) {
	p, err := startPlatform(ctx)
	if p != nil {
		defer p.stop()
	}
	if err != nil {
		return false, err
	}
	flows, err := applySamples(ctx, p)
	if err != nil {
		return false, err
	}
	if err := waitReady(ctx, p, flows); err != nil {
		return false, err
	}
	runCtx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	results, err := runFlows(runCtx, p, flows, o.messages)
	if err != nil {
		return false, err
	}
	kept := report(ctx, p, flows, results)
	if o.keep {
		if err := keepRunning(ctx, p); err != nil {
			return kept, err
		}
	}
	return kept, nil
}

// progress prints one step of the demo as it starts.
func progress(format string, args ...any) {
	fmt.Printf("==> "+format+"\n", args...)
}
