package controllers

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hubflow/hubflow/internal/hub"
	"github.com/hubflow/hubflow/internal/tenancy"
	"github.com/hubflow/hubflow/internal/testnats"
)

// The account hub routes each call to its namespace's account, refuses a
// stream that names no namespace, and makes again an account connection
// that nats.go closed for good, stopping the old one's advisory watch.
func TestAccountHubRoutesAndReopens(t *testing.T) {
	trust, err := testnats.NewTrust()
	if err != nil {
		t.Fatal(err)
	}
	srv, err := testnats.StartOperatorMode(t.TempDir(), trust)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	sysCreds, err := trust.SystemUserCreds("manager")
	if err != nil {
		t.Fatal(err)
	}
	sys := testnats.ConnectCreds(t, srv.URL(), sysCreds)
	authority, err := tenancy.NewAuthority(trust.OperatorSigningSeed(), []byte("a root secret of at least thirty-two bytes"), tenancy.Unlimited)
	if err != nil {
		t.Fatal(err)
	}
	var watching, watches atomic.Int32
	a := newAccountHub(Tenancy{
		Authority: authority, CredentialsTTL: time.Hour,
		Connect: func(_ context.Context, userJWT, seed string) (*nats.Conn, error) {
			return nats.Connect(srv.URL(), nats.UserJWTAndSeed(userJWT, seed))
		},
	}, sys, func(ctx context.Context, _ *nats.Conn) {
		watches.Add(1)
		watching.Add(1)
		<-ctx.Done()
		watching.Add(-1)
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Start(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	for _, ns := range []string{"team-a", "team-b"} {
		if _, err := a.CreateStream(ctx, jetstream.StreamConfig{Name: ns + "_orders", Subjects: []string{ns + ".orders"}}); err != nil {
			t.Fatal(err)
		}
	}
	// A stream made out of band in team A's account under team B's prefix
	// is not listed: everything listed is routed by its prefix.
	a.mu.Lock()
	teamA := a.tenants["team-a"]
	a.mu.Unlock()
	if _, err := teamA.client.CreateStream(ctx, jetstream.StreamConfig{Name: "team-b_forged", Subjects: []string{"forged"}}); err != nil {
		t.Fatal(err)
	}
	streams, err := a.ListStreams(ctx)
	if err != nil || len(streams) != 2 {
		t.Fatalf("listed %d streams (%v), want both accounts' one each", len(streams), err)
	}
	if _, err := a.Stream(ctx, "nonamespace"); err == nil {
		t.Error("a stream naming no namespace was routed")
	}

	a.mu.Lock()
	old := a.tenants["team-a"]
	a.mu.Unlock()
	old.nc.Close()
	if _, err := a.Stream(ctx, "team-a_orders"); err != nil {
		t.Fatalf("after nats.go closed the account's connection: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for watching.Load() != 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if watching.Load() != 2 || watches.Load() != 3 {
		t.Errorf("advisory watches: %d running, %d started; want 2 running (the closed connection's stopped), 3 started", watching.Load(), watches.Load())
	}
	if _, err := a.Stream(ctx, "team-a_missing"); !errors.Is(err, hub.ErrNotFound) {
		t.Errorf("a missing stream: %v, want ErrNotFound", err)
	}
}

// An account the resolver lost (a wiped resolver directory, a restored
// cluster) is pushed again once its connection's login is refused, and the
// connection, which keeps retrying, logs in again.
func TestAccountHubPushesALostAccountAgain(t *testing.T) {
	trust, err := testnats.NewTrust()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	srv, err := testnats.StartOperatorMode(dir, trust)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	sysCreds, err := trust.SystemUserCreds("manager")
	if err != nil {
		t.Fatal(err)
	}
	sys := testnats.ConnectCreds(t, srv.URL(), sysCreds, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	authority, err := tenancy.NewAuthority(trust.OperatorSigningSeed(), []byte("a root secret of at least thirty-two bytes"), tenancy.Unlimited)
	if err != nil {
		t.Fatal(err)
	}
	a := newAccountHub(Tenancy{
		Authority: authority, CredentialsTTL: time.Hour,
		// As cmd/manager connects.
		Connect: func(_ context.Context, userJWT, seed string) (*nats.Conn, error) {
			return nats.Connect(srv.URL(), nats.UserJWTAndSeed(userJWT, seed), nats.MaxReconnects(-1),
				nats.RetryOnFailedConnect(true), nats.ReconnectWait(50*time.Millisecond), nats.IgnoreAuthErrorAbort())
		},
	}, sys, func(ctx context.Context, _ *nats.Conn) { <-ctx.Done() })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Start(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	if _, err := a.CreateStream(ctx, jetstream.StreamConfig{Name: "team-c_orders", Subjects: []string{"team-c.orders"}}); err != nil {
		t.Fatal(err)
	}
	key, err := authority.AccountKey("team-c")
	if err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	if err := os.Remove(filepath.Join(dir, "jwt", key+".jwt")); err != nil {
		t.Fatalf("wiping the account from the resolver: %v", err)
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := a.Stream(ctx, "team-c_orders")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			a.mu.Lock()
			nc := a.tenants["team-c"].nc
			a.mu.Unlock()
			t.Fatalf("the account's stream is still out of reach 30s after the resolver lost the account: %v (connection %s, last error %v)", err, nc.Status(), nc.LastError())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
