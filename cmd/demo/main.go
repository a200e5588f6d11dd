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
	"log/slog"
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
	picture  string // where the SVG of the flows goes; empty for none
	faults   bool
	messages int
	timeout  time.Duration
}

func main() {
	var o options
	flag.BoolVar(&o.keep, "keep", os.Getenv("HUBFLOW_DEMO_KEEP") != "", "Leave everything running after the report (also HUBFLOW_DEMO_KEEP=1); Ctrl-C stops it.")
	flag.BoolVar(&o.faults, "faults", true, "Hit every flow with the same faults while it runs (producer connections cut, the stream leader stopped, each consumer killed between handling and acknowledging), so the table shows what each semantic promises; --faults=false runs on a healthy hub.")
	flag.IntVar(&o.messages, "messages", 1000, "Messages each producer sends.")
	flag.StringVar(&o.picture, "picture", "bin/demo/flows.svg", "Write an SVG of the flows (as kubectl hubflow graph draws them) to this file; empty for none.")
	flag.DurationVar(&o.timeout, "timeout", 5*time.Minute, "Give up when the flows have not finished by then.")
	flag.Parse()
	// The manager's own logs would drown the demo's progress lines; set
	// HUBFLOW_DEMO_LOG=1 to see them.
	ctrl.SetLogger(logr.Discard())
	if os.Getenv("HUBFLOW_DEMO_LOG") != "" {
		ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr)))
		clientLog = slog.Default()
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	_, kept, err := run(ctx, o)
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
// started before returning, also on Ctrl-C. It returns the table's rows and
// whether every flow kept its promise.
func run(ctx context.Context, o options) ([]flowResult, bool, error) {
	p, err := startPlatform(ctx)
	if p != nil {
		defer p.stop()
	}
	if err != nil {
		return nil, false, err
	}
	flows, err := applySamples(ctx, p, o.faults)
	if err != nil {
		return nil, false, err
	}
	if err := waitReady(ctx, p, flows); err != nil {
		return nil, false, err
	}
	runCtx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	var fs *faults
	if o.faults {
		fs = &faults{cluster: p.cluster}
	}
	results, err := runFlows(runCtx, p, flows, o.messages, fs)
	if err != nil {
		return nil, false, err
	}
	kept := report(ctx, p, flows, results, fs)
	httpRes, err := runHTTPFlow(ctx, p)
	if err != nil {
		return results, false, fmt.Errorf("the HTTP flow: %w", err)
	}
	if !httpRes.kept() {
		fmt.Printf("    the HTTP flow broke its promise: %+v\n", httpRes)
		kept = false
	}
	if o.picture != "" {
		if err := writePicture(ctx, p.env.Client, o.picture); err != nil {
			return results, kept, fmt.Errorf("writing the picture: %w", err)
		}
	}
	if o.keep {
		if err := keepRunning(ctx, p); err != nil {
			return results, kept, err
		}
	}
	return results, kept, nil
}

// clientLog receives the client library's logs (reconnects, resends):
// discarded unless HUBFLOW_DEMO_LOG is set, since the fault report says
// what happened.
var clientLog = slog.New(slog.DiscardHandler)

// progress prints one step of the demo as it starts.
func progress(format string, args ...any) {
	fmt.Printf("==> "+format+"\n", args...)
}
