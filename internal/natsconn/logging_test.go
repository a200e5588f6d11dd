package natsconn

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"github.com/nats-io/nats-server/v2/server"
)

// lines collects log lines written by a funcr logger.
type lines struct {
	mu  sync.Mutex
	all []string
}

func (l *lines) add(prefix, args string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.all = append(l.all, prefix+" "+args)
}

func (l *lines) snapshot() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.all...)
}

func (l *lines) waitFor(t *testing.T, substr string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, line := range l.snapshot() {
			if strings.Contains(line, substr) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no log line contains %q; got %q", substr, l.snapshot())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestHandlersNeverLogCredentials(t *testing.T) {
	const user, password = "alice", "s3cret-password"
	s, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, NoSigs: true,
		Username: user, Password: password,
	})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	t.Cleanup(s.Shutdown) // Shutdown is idempotent; the test also stops the server itself
	if !s.ReadyForConnections(5 * time.Second) {
		t.Fatal("NATS server not ready")
	}
	addr := s.Addr().String()

	var got lines
	log := funcr.New(got.add, funcr.Options{Verbosity: 1})
	ctx := logr.NewContext(context.Background(), log)
	o := Options{URL: "nats://" + user + ":" + password + "@" + addr, ReconnectWait: 20 * time.Millisecond}
	nc, err := o.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	got.waitFor(t, "connected to NATS")

	// Losing the server produces the disconnect and failed-attempt lines too.
	s.Shutdown()
	s.WaitForShutdown()
	got.waitFor(t, "disconnected from NATS")
	got.waitFor(t, "connection attempt failed")

	for _, line := range got.snapshot() {
		if strings.Contains(line, password) || strings.Contains(line, user) {
			t.Errorf("log line leaks credentials: %s", line)
		}
	}
}
