// Command consumer is the monitoring flow's live dashboard: it counts page
// views per page and prints the counts every few seconds. AtMostOnce: it
// acknowledges nothing, and a view lost in a restart is simply not counted.
//
//	SERVICE_BINDING_ROOT=/bindings go run ./examples/monitoring/consumer
package main

import (
	"context"
	"encoding/json"
	"flag"
	"log"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/hubflow/hubflow/pkg/hubflow"
)

func main() {
	// run returns instead of exiting, so its deferred Close calls always run:
	// log.Fatal inside it would skip them and leave work unacknowledged.
	if err := run(); err != nil {
		log.Fatal(err)
	}
}

func run() error {
	name := flag.String("binding", "activity-dashboard", "binding name under $SERVICE_BINDING_ROOT")
	every := flag.Duration("every", 5*time.Second, "how often to print the counts")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	startCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	c, err := hubflow.ConsumerFromEnv(startCtx, *name)
	cancel()
	if err != nil {
		return err
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := c.Close(closeCtx); err != nil {
			log.Printf("close: %v", err)
		}
	}()

	var mu sync.Mutex
	views := map[string]int{}
	go func() {
		for range time.Tick(*every) {
			mu.Lock()
			log.Printf("page views: %v", views)
			mu.Unlock()
		}
	}()
	err = c.Run(ctx, func(_ context.Context, d *hubflow.Delivery) error {
		var ev struct{ Page string }
		if err := json.Unmarshal(d.Data, &ev); err != nil {
			return err // logged; nothing is redelivered under AtMostOnce
		}
		mu.Lock()
		views[ev.Page]++
		mu.Unlock()
		return nil
	})
	return err
}
