package testnats

import (
	"context"
	"errors"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The operator-mode server trusts only its operator's accounts, serves
// JetStream to the application account, and keeps both across a restart.
func TestOperatorModeServer(t *testing.T) {
	trust, err := NewTrust()
	if err != nil {
		t.Fatal(err)
	}
	s, err := StartOperatorMode(t.TempDir(), trust)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	creds, err := trust.UserCreds("admin", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := NewTrust() // another operator's account
	if err != nil {
		t.Fatal(err)
	}
	strangerCreds, err := stranger.UserCreds("stranger", nil, nil)
	if err != nil {
		t.Fatal(err)
	}

	for round := range 2 {
		if _, err := nats.Connect(s.URL(), UserJWTAndSeed(t, strangerCreds)); !errors.Is(err, nats.ErrAuthorization) {
			t.Errorf("round %d: a user of an unknown operator connected (%v)", round, err)
		}
		nc, err := nats.Connect(s.URL(), UserJWTAndSeed(t, creds))
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		js, _ := jetstream.New(nc)
		if _, err := js.CreateOrUpdateStream(context.Background(), jetstream.StreamConfig{Name: "s", Subjects: []string{"s"}}); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if _, err := js.Publish(context.Background(), "s", nil); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		info, err := js.Stream(context.Background(), "s")
		if err != nil || info.CachedInfo().State.Msgs != uint64(round+1) {
			t.Fatalf("round %d: stream %v (%v)", round, info, err)
		}
		nc.Close()
		if err := s.Restart(); err != nil {
			t.Fatal(err)
		}
	}
}
