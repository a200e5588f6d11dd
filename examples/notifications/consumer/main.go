// Command consumer is the notifications flow's e-mail sender. AtLeastOnce:
// it acknowledges a request only after the mail provider accepted it, asks
// for a later redelivery when the provider fails, and drops requests it can
// never send. A crash between sending and acknowledging sends the e-mail
// again, which AtLeastOnce accepts.
//
//	SERVICE_BINDING_ROOT=/bindings go run ./examples/notifications/consumer
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"log"
	"net/mail"
	"os/signal"
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
	name := flag.String("binding", "email-sender", "binding name under $SERVICE_BINDING_ROOT")
	workers := flag.Int("workers", 4, "e-mails sent in parallel")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	startCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	c, err := hubflow.ConsumerFromEnv(startCtx, *name, hubflow.WithConcurrency(*workers))
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

	// Run returns after ctx ends and the e-mails in hand are sent and acknowledged.
	err = c.Run(ctx, func(ctx context.Context, d *hubflow.Delivery) error {
		var req struct{ To, Template string }
		if err := json.Unmarshal(d.Data, &req); err != nil {
			return hubflow.Poison(err) // never sendable: do not redeliver
		}
		if _, err := mail.ParseAddress(req.To); err != nil {
			return hubflow.Poison(err)
		}
		if err := send(ctx, req.To, req.Template); err != nil {
			return err // redelivered after the binding's delay
		}
		log.Printf("sent %q to %s (delivery %d)", req.Template, req.To, d.NumDelivered)
		return nil
	})
	if err != nil {
		return err
	}
	log.Printf("stopped: %+v", c.Stats())
	return nil
}

// send stands in for the mail provider's API.
func send(ctx context.Context, to, template string) error {
	select {
	case <-ctx.Done():
		return errors.New("shutting down before the provider answered")
	case <-time.After(10 * time.Millisecond):
		return nil
	}
}
