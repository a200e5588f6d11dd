// Command producer is the notifications flow's signup service: for every
// new user it asks for a welcome e-mail and waits until the hub has stored
// the request (AtLeastOnce), retrying as its binding says, so a signup never
// completes without its e-mail being on its way.
//
//	SERVICE_BINDING_ROOT=/bindings go run ./examples/notifications/producer -n 10
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os/signal"
	"syscall"
	"time"

	"github.com/hubflow/hubflow/pkg/hubflow"
)

type welcomeEmail struct {
	To       string `json:"to"`
	Template string `json:"template"`
}

func main() {
	// run returns instead of exiting, so its deferred Close calls always run:
	// log.Fatal inside it would skip them and leave work unacknowledged.
	if err := run(); err != nil {
		log.Fatal(err)
	}
}

func run() error {
	name := flag.String("binding", "signup-service", "binding name under $SERVICE_BINDING_ROOT")
	n := flag.Int("n", 10, "signups to simulate")
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

	for i := range *n {
		body, _ := json.Marshal(welcomeEmail{To: fmt.Sprintf("user%d@example.com", i), Template: "welcome"})
		// One request per signup: Publish returns once the stream has it.
		ack, err := p.Publish(ctx, hubflow.Msg{Data: body})
		if err != nil {
			// The signup request fails with a reason the user can retry on.
			log.Printf("signup %d: welcome e-mail not queued: %v", i, err)
			continue
		}
		log.Printf("signup %d: welcome e-mail queued as %s #%d", i, ack.Stream, ack.Sequence)
	}
	return nil
}
