package controllers

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hubflow/hubflow/internal/hub"
	"github.com/hubflow/hubflow/internal/tenancy"
	"github.com/hubflow/hubflow/internal/testnats"
)

// startAccountHub runs an account hub against a new operator-mode server
// whose resolver keeps its account JWTs under dir/jwt. Its connections are
// made as cmd/manager makes them: natsconn's retry-forever options, plus
// what the hub adds.
func startAccountHub(t *testing.T, dir string) (*accountHub, *testnats.Server, *tenancy.Authority) {
	t.Helper()
	trust, err := testnats.NewTrust()
	if err != nil {
		t.Fatal(err)
	}
	srv, err := testnats.StartOperatorMode(dir, trust)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	sysCreds, err := trust.SystemUserCreds("manager")
	if err != nil {
		t.Fatal(err)
	}
	retry := []nats.Option{nats.MaxReconnects(-1), nats.RetryOnFailedConnect(true), nats.ReconnectWait(50 * time.Millisecond)}
	sys := testnats.ConnectCreds(t, srv.URL(), sysCreds, retry...)
	authority, err := tenancy.NewAuthority(trust.OperatorSigningSeed(), []byte("a root secret of at least thirty-two bytes"), tenancy.Unlimited)
	if err != nil {
		t.Fatal(err)
	}
	a := newAccountHub(Tenancy{
		Authority: authority, CredentialsTTL: time.Hour,
		Connect: func(_ context.Context, opts ...nats.Option) (*nats.Conn, error) {
			return nats.Connect(srv.URL(), append(retry, opts...)...)
		},
	}, sys, func(ctx context.Context, _ *nats.Conn) { <-ctx.Done() })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Start(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return a, srv, authority
}

// The account hub routes each call to its namespace's account, lists each
// account's own streams only, and refuses a stream that names no namespace.
func TestAccountHubRoutesByNamespace(t *testing.T) {
	ctx := context.Background()
	a, _, _ := startAccountHub(t, t.TempDir())
	for _, ns := range []string{"team-a", "team-b"} {
		if _, err := a.CreateStream(ctx, jetstream.StreamConfig{Name: ns + "_orders", Subjects: []string{ns + ".orders"}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.Stream(ctx, "team-a_missing"); !errors.Is(err, hub.ErrNotFound) {
		t.Errorf("a missing stream: %v, want ErrNotFound", err)
	}
	if _, err := a.Stream(ctx, "team-b_orders"); err != nil {
		t.Errorf("team B's stream through its account: %v", err)
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
	if a.accountKey("team-a") != teamA.account || a.accountKey("team-c") != "" {
		t.Errorf("account keys: team-a %q (want %q), team-c %q (want none: never opened)", a.accountKey("team-a"), teamA.account, a.accountKey("team-c"))
	}
}

// An account the resolver lost (a wiped resolver directory, a restored
// cluster) is pushed again once its connection's login is refused, and the
// connection, which keeps retrying, logs in again.
func TestAccountHubPushesALostAccountAgain(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a, srv, authority := startAccountHub(t, dir)
	if _, err := a.CreateStream(ctx, jetstream.StreamConfig{Name: "team-c_orders", Subjects: []string{"team-c.orders"}}); err != nil {
		t.Fatal(err)
	}
	acc, err := authority.Account("team-c")
	if err != nil {
		t.Fatal(err)
	}
	acc.Wipe()
	srv.Stop()
	if err := os.Remove(filepath.Join(dir, "jwt", acc.Public+".jwt")); err != nil {
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
