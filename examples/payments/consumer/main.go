// Command consumer is the payments flow's ledger. ExactlyOnce: each payment
// is booked under its idempotency key — booking a key twice is a no-op, the
// side effect is idempotent — then the acknowledgement is confirmed by the
// server (double ack). The dedup record lets a redelivery after a lost ack
// skip the handler altogether.
//
//	SERVICE_BINDING_ROOT=/bindings go run ./examples/payments/consumer -state ./ledger
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
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
	name := flag.String("binding", "payment-ledger", "binding name under $SERVICE_BINDING_ROOT")
	state := flag.String("state", "ledger", "directory of the ledger and the dedup record (a persistent volume)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := os.MkdirAll(*state, 0o700); err != nil {
		return err
	}
	book, err := openLedger(filepath.Join(*state, "ledger.txt"))
	if err != nil {
		return err
	}
	defer book.f.Close()
	record, err := hubflow.OpenFileDedup(filepath.Join(*state, "processed.txt"), true)
	if err != nil {
		return err
	}
	defer record.Close()

	startCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	c, err := hubflow.ConsumerFromEnv(startCtx, *name, hubflow.WithDedup(record))
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

	err = c.Run(ctx, func(_ context.Context, d *hubflow.Delivery) error {
		var pay struct {
			Amount int64 `json:"amountCents"`
			Payer  string
		}
		if err := json.Unmarshal(d.Data, &pay); err != nil {
			return hubflow.Poison(err)
		}
		booked, err := book.add(d.IdempotencyKey, pay.Payer, pay.Amount)
		if err != nil {
			return err // the ledger's disk failed: redeliver later
		}
		if booked {
			log.Printf("booked %s: %d cents from %s", d.IdempotencyKey, pay.Amount, pay.Payer)
		}
		return nil
	})
	if err != nil {
		return err
	}
	log.Printf("stopped: %+v", c.Stats())
	return nil
}

// ledger is an append-only file of bookings, one per idempotency key. In
// production this is a table with the key as its primary key, and the
// booking and the key go in one transaction.
type ledger struct {
	mu     sync.Mutex
	f      *os.File
	booked map[string]bool
}

func openLedger(path string) (*ledger, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	l := &ledger{f: f, booked: map[string]bool{}}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, _, _ := strings.Cut(sc.Text(), " ")
		l.booked[key] = true
	}
	return l, sc.Err()
}

// add books a payment once: a key already booked is not booked again.
func (l *ledger) add(key, payer string, cents int64) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.booked[key] {
		return false, nil
	}
	if _, err := fmt.Fprintf(l.f, "%s %s %d\n", key, payer, cents); err != nil {
		return false, err
	}
	if err := l.f.Sync(); err != nil {
		return false, err
	}
	l.booked[key] = true
	return true, nil
}
