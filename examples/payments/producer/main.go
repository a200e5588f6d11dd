// Command producer is the payments flow's checkout: it publishes each
// captured payment with the payment's id as its idempotency key
// (ExactlyOnce). The stream stores a payment once however many times it is
// published inside the Topic's duplicate window — by the library's retries,
// or by checkout itself publishing again after an error or a restart.
//
//	SERVICE_BINDING_ROOT=/bindings go run ./examples/payments/producer -n 100
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

type payment struct {
	ID     string `json:"id"`
	Amount int64  `json:"amountCents"`
	Payer  string `json:"payer"`
}

func main() {
	// run returns instead of exiting, so its deferred Close calls always run:
	// log.Fatal inside it would skip them and leave work unacknowledged.
	if err := run(); err != nil {
		log.Fatal(err)
	}
}

func run() error {
	name := flag.String("binding", "checkout", "binding name under $SERVICE_BINDING_ROOT")
	n := flag.Int("n", 100, "payments to capture")
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

	// Many payments in flight at once; each Future resolves when its
	// payment is stored (or says why it is not).
	futures := make([]*hubflow.Future, 0, *n)
	for i := range *n {
		pay := payment{ID: fmt.Sprintf("pay-%06d", i), Amount: int64(100 + i), Payer: fmt.Sprintf("acct-%d", i%7)}
		body, _ := json.Marshal(pay)
		f, err := p.PublishAsync(ctx, hubflow.Msg{Data: body, ID: pay.ID})
		if err != nil {
			return fmt.Errorf("payment %s: %w", pay.ID, err)
		}
		futures = append(futures, f)
	}
	stored := 0
	for _, f := range futures {
		if _, err := f.Wait(ctx); err != nil {
			// Safe to publish again with the same ID inside the duplicate window.
			log.Printf("not stored, publish again later: %v", err)
			continue
		}
		stored++
	}
	st := p.Stats()
	log.Printf("%d payments stored (%d retries, %d duplicates recognised by the stream)", stored, st.Retries, st.Duplicates)
	return nil
}
