// Command producer is the monitoring flow's web frontend: it publishes one
// page-view event per request, fire-and-forget (AtMostOnce), so page latency
// never depends on the hub.
//
//	SERVICE_BINDING_ROOT=/bindings go run ./examples/monitoring/producer -n 1000
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"os/signal"
	"syscall"
	"time"

	"github.com/hubflow/hubflow/pkg/hubflow"
)

type pageView struct {
	Page   string    `json:"page"`
	User   string    `json:"user"`
	Viewed time.Time `json:"viewed"`
}

func main() {
	// run returns instead of exiting, so its deferred Close calls always run:
	// log.Fatal inside it would skip them and leave work unacknowledged.
	if err := run(); err != nil {
		log.Fatal(err)
	}
}

func run() error {
	name := flag.String("binding", "web-frontend", "binding name under $SERVICE_BINDING_ROOT")
	n := flag.Int("n", 1000, "page views to publish (0: until interrupted)")
	rate := flag.Int("rate", 200, "page views per second")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	startCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	p, err := hubflow.ProducerFromEnv(startCtx, *name)
	cancel()
	if err != nil {
		return err
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := p.Close(closeCtx); err != nil {
			log.Printf("close: %v", err)
		}
	}()

	pages := []string{"/", "/search", "/product/42", "/cart", "/checkout"}
	tick := time.NewTicker(time.Second / time.Duration(max(*rate, 1)))
	defer tick.Stop()
	for i := 0; *n == 0 || i < *n; i++ {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		ev, _ := json.Marshal(pageView{Page: pages[rand.IntN(len(pages))], User: fmt.Sprintf("user-%d", rand.IntN(50)), Viewed: time.Now()})
		// Returns as soon as the event is buffered; an error means the
		// connection is closed, never that the hub is slow.
		if _, err := p.Publish(ctx, hubflow.Msg{Data: ev}); err != nil {
			log.Printf("page view dropped: %v", err)
		}
	}
	log.Printf("published %d page views", p.Stats().Published)
	return nil
}
