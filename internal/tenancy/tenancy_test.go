package tenancy_test

import (
	"context"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hubflow/hubflow/internal/semantic"
	"github.com/hubflow/hubflow/internal/tenancy"
	"github.com/hubflow/hubflow/internal/testnats"
)

func newRoot(t *testing.T) []byte {
	t.Helper()
	root := make([]byte, 48)
	if _, err := rand.Read(root); err != nil {
		t.Fatal(err)
	}
	return root
}

// An account is a pure function of the root secret and the namespace.
func TestAccountsAreDerivedNotStored(t *testing.T) {
	trust, err := testnats.NewTrust()
	if err != nil {
		t.Fatal(err)
	}
	root := newRoot(t)
	a, err := tenancy.NewAuthority(trust.OperatorSigningSeed(), root, tenancy.Unlimited)
	if err != nil {
		t.Fatal(err)
	}
	again, err := tenancy.NewAuthority(trust.OperatorSigningSeed(), root, tenancy.Unlimited)
	if err != nil {
		t.Fatal(err)
	}
	other, err := tenancy.NewAuthority(trust.OperatorSigningSeed(), newRoot(t), tenancy.Unlimited)
	if err != nil {
		t.Fatal(err)
	}
	key := func(a *tenancy.Authority, ns string) (string, string) {
		acc, err := a.Account(ns)
		if err != nil {
			t.Fatal(err)
		}
		return acc.Public, acc.SigningKey
	}
	pub1, sk1 := key(a, "team-a")
	pub2, sk2 := key(again, "team-a")
	if pub1 != pub2 || sk1 != sk2 {
		t.Errorf("the same root and namespace gave two accounts: %s/%s and %s/%s", pub1, sk1, pub2, sk2)
	}
	if pub1 == sk1 {
		t.Error("the account signs its users with its identity key")
	}
	if p, _ := key(a, "team-b"); p == pub1 {
		t.Error("two namespaces share an account")
	}
	if p, _ := key(other, "team-a"); p == pub1 {
		t.Error("another root secret gave the same account")
	}

	acc, _ := a.Account("team-a")
	token, err := a.JWT(acc)
	if err != nil {
		t.Fatal(err)
	}
	claims, err := jwt.DecodeAccountClaims(token)
	if err != nil {
		t.Fatal(err)
	}
	if claims.Name != "team-a" || claims.Issuer != a.OperatorSigningKey() || !claims.SigningKeys.Contains(acc.SigningKey) {
		t.Errorf("account claims: name %q, issuer %s, signing keys %v", claims.Name, claims.Issuer, claims.SigningKeys.Keys())
	}
	if !claims.Limits.JetStreamLimits.IsUnlimited() {
		t.Errorf("JetStream limits %+v, want unlimited", claims.Limits.JetStreamLimits)
	}
}

func TestAuthorityRefusesBadKeys(t *testing.T) {
	trust, err := testnats.NewTrust()
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		seed, root []byte
		limits     tenancy.Limits
		want       string
	}{
		"short root":      {trust.OperatorSigningSeed(), []byte("too short"), tenancy.Unlimited, "at least 32 bytes"},
		"account seed":    {trust.SigningSeed(), newRoot(t), tenancy.Unlimited, "not an operator key"},
		"no seed":         {[]byte("hello"), newRoot(t), tenancy.Unlimited, "no operator seed"},
		"no JetStream":    {trust.OperatorSigningSeed(), newRoot(t), tenancy.Limits{MemoryStorage: -1, DiskStorage: -1, Streams: 0, Consumers: -1}, "limit on streams"},
		"negative limits": {trust.OperatorSigningSeed(), newRoot(t), tenancy.Limits{MemoryStorage: -1, DiskStorage: -5, Streams: -1, Consumers: -1}, "limit on disk storage"},
	} {
		_, err := tenancy.NewAuthority(c.seed, c.root, c.limits)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error saying %q", name, err, c.want)
		}
	}
}

// hub is an operator-mode server with two namespaces' accounts pushed.
type hub struct {
	url       string
	replicas  int
	authority *tenancy.Authority
	sys       *nats.Conn
}

func startHub(t *testing.T, limits tenancy.Limits, cluster bool) *hub {
	t.Helper()
	trust, err := testnats.NewTrust()
	if err != nil {
		t.Fatal(err)
	}
	h := &hub{replicas: 1}
	if cluster {
		c := testnats.StartTestOperatorModeCluster(t, trust)
		h.url, h.replicas = c.URL(), 3
	} else {
		srv, err := testnats.StartOperatorMode(t.TempDir(), trust)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(srv.Stop)
		h.url = srv.URL()
	}
	sysCreds, err := trust.SystemUserCreds("hubflow-manager")
	if err != nil {
		t.Fatal(err)
	}
	h.sys = testnats.ConnectCreds(t, h.url, sysCreds)
	if h.authority, err = tenancy.NewAuthority(trust.OperatorSigningSeed(), newRoot(t), limits); err != nil {
		t.Fatal(err)
	}
	return h
}

func connect(t *testing.T, url string, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// tenant pushes namespace's account and connects as the manager would.
func (h *hub) tenant(t *testing.T, namespace string) (*tenancy.Account, *nats.Conn) {
	t.Helper()
	acc, err := h.authority.Account(namespace)
	if err != nil {
		t.Fatal(err)
	}
	token, err := h.authority.JWT(acc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for range 2 { // a second push of the same account is harmless
		if err := tenancy.Push(ctx, h.sys, token); err != nil {
			t.Fatal(err)
		}
	}
	userJWT, seed, err := acc.ManagerUser("hubflow-manager")
	if err != nil {
		t.Fatal(err)
	}
	return acc, connect(t, h.url, nats.UserJWTAndSeed(userJWT, seed))
}

// user mints a user of acc with the given allow lists, as the manager
// mints a workload's.
func user(t *testing.T, h *hub, acc *tenancy.Account, perms semantic.Permissions, opts ...nats.Option) *nats.Conn {
	t.Helper()
	issuer, err := acc.Issuer(time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	issued, err := issuer.Issue("workload", perms, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return testnats.ConnectCreds(t, h.url, issued.Creds, opts...)
}

func js(t *testing.T, nc *nats.Conn) jetstream.JetStream {
	t.Helper()
	j, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func msgs(t *testing.T, j jetstream.JetStream, stream string) uint64 {
	t.Helper()
	s, err := j.Stream(context.Background(), stream)
	if err != nil {
		t.Fatalf("stream %s: %v", stream, err)
	}
	return s.CachedInfo().State.Msgs
}

// The deny matrix, at the NATS level: a user of one tenant's account, even
// one allowed every subject, cannot reach another tenant's streams,
// durables, deliveries or inboxes. The first case also runs inside one
// account, where the attack works: it shows the test can fail, and that the
// account boundary, not a permission list, is what stops it.
func TestTenantsCannotReachEachOther(t *testing.T) {
	t.Run("one server", func(t *testing.T) { denyMatrix(t, false) })
	t.Run("three-node cluster", func(t *testing.T) { denyMatrix(t, true) })
}

func denyMatrix(t *testing.T, cluster bool) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	h := startHub(t, tenancy.Unlimited, cluster)
	accA, mgrA := h.tenant(t, "team-a")
	accB, mgrB := h.tenant(t, "team-b")
	jsA, jsB := js(t, mgrA), js(t, mgrB)

	// Team A: a Topic and a durable. Team B: an ExactlyOnce Topic with a
	// durable, and a second Topic in A's own account to show the attack.
	for _, c := range []struct {
		j       jetstream.JetStream
		stream  string
		subject string
	}{{jsA, "team-a_events", "team-a.events"}, {jsA, "team-a_sink", "team-a.sink"}, {jsB, "team-b_orders", "team-b.orders"}} {
		if _, err := c.j.CreateStream(ctx, jetstream.StreamConfig{Name: c.stream, Subjects: []string{c.subject}, Duplicates: time.Minute, Replicas: h.replicas}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := jsA.CreateConsumer(ctx, "team-a_events", jetstream.ConsumerConfig{Durable: "reader", AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Fatal(err)
	}
	billing, err := jsB.CreateConsumer(ctx, "team-b_orders", jetstream.ConsumerConfig{Durable: "billing", AckPolicy: jetstream.AckExplicitPolicy, AckWait: time.Minute})
	if err != nil {
		t.Fatal(err)
	}

	// B's producer publishes as its binding lets it.
	producerB := js(t, user(t, h, accB, semantic.Permissions{
		Publish:   []string{"team-b.orders"},
		Subscribe: []string{"_INBOX_team-b_producer_p.>"},
	}, nats.CustomInboxPrefix("_INBOX_team-b_producer_p")))

	// A's attacker holds a user allowed everything in its own account.
	attacker := user(t, h, accA, semantic.Permissions{Publish: []string{">"}, Subscribe: []string{">"}})
	jsAttacker := js(t, attacker)
	pa, err := jsAttacker.Publish(ctx, "team-a.events", []byte("x"), jetstream.WithMsgID("order-1"))
	if err != nil {
		t.Fatal(err)
	}
	if pa.Stream != "team-a_events" {
		t.Fatalf("acknowledged by %s", pa.Stream)
	}
	if _, err := jsAttacker.Publish(ctx, "team-a.events", []byte("y"), jetstream.WithMsgID("order-2")); err != nil {
		t.Fatal(err)
	}

	t.Run("reply subject trick", func(t *testing.T) {
		// In its own account the trick works: the delivery lands in the sink.
		if err := attacker.PublishRequest("$JS.API.CONSUMER.MSG.NEXT.team-a_events.reader", "team-a.sink", []byte(`{"batch":1}`)); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for msgs(t, jsA, "team-a_sink") == 0 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if n := msgs(t, jsA, "team-a_sink"); n != 1 {
			t.Fatalf("control: the trick should work inside one account, the sink holds %d messages", n)
		}
		// Across accounts it reaches nothing.
		if err := attacker.PublishRequest("$JS.API.CONSUMER.MSG.NEXT.team-a_events.reader", "team-b.orders", []byte(`{"batch":1}`)); err != nil {
			t.Fatal(err)
		}
		if err := attacker.Flush(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond) // the delivery, had it crossed, is stored by now
		if n := msgs(t, jsB, "team-b_orders"); n != 0 {
			t.Fatalf("the delivery crossed into team B's stream: %d messages", n)
		}
		// B's own ExactlyOnce publish with the id the delivery carried is stored.
		pa, err := producerB.Publish(ctx, "team-b.orders", []byte("real"), jetstream.WithMsgID("order-2"))
		if err != nil || pa.Duplicate {
			t.Fatalf("team B's publish: %+v, %v", pa, err)
		}
	})

	t.Run("publish into the other tenant", func(t *testing.T) {
		before := msgs(t, jsB, "team-b_orders")
		_, err := jsAttacker.Publish(ctx, "team-b.orders", []byte("forged"), jetstream.WithMsgID("order-3"))
		if !errors.Is(err, jetstream.ErrNoStreamResponse) {
			t.Errorf("a publish on team B's subject got %v, want no stream to answer", err)
		}
		if n := msgs(t, jsB, "team-b_orders"); n != before {
			t.Errorf("team B's stream went from %d to %d messages", before, n)
		}
	})

	t.Run("streams: read, delete, purge, create", func(t *testing.T) {
		if _, err := jsAttacker.Stream(ctx, "team-b_orders"); !errors.Is(err, jetstream.ErrStreamNotFound) {
			t.Errorf("team B's stream is visible: %v", err)
		}
		if err := jsAttacker.DeleteStream(ctx, "team-b_orders"); !errors.Is(err, jetstream.ErrStreamNotFound) {
			t.Errorf("deleting team B's stream: %v", err)
		}
		names := jsAttacker.StreamNames(ctx)
		for n := range names.Name() {
			if strings.HasPrefix(n, "team-b") {
				t.Errorf("team B's stream %s is listed", n)
			}
		}
		// A stream in A's account on B's subjects captures only A's own
		// traffic (hubflow refuses such a Topic anyway).
		if _, err := jsAttacker.CreateStream(ctx, jetstream.StreamConfig{Name: "squat", Subjects: []string{"team-b.>", "_INBOX_team-b_consumer_billing.>"}}); err != nil {
			t.Fatal(err)
		}
		before := msgs(t, jsB, "team-b_orders")
		if _, err := producerB.Publish(ctx, "team-b.orders", []byte("after squat"), jetstream.WithMsgID("order-4")); err != nil {
			t.Errorf("team B's publish after the squat: %v", err)
		}
		if n := msgs(t, jsB, "team-b_orders"); n != before+1 {
			t.Errorf("team B's stream holds %d messages, want %d", n, before+1)
		}
		if n := msgs(t, jsAttacker, "squat"); n != 0 {
			t.Errorf("the squatting stream captured %d of team B's messages", n)
		}
	})

	t.Run("durables: read and acknowledge", func(t *testing.T) {
		if _, err := jsAttacker.Consumer(ctx, "team-b_orders", "billing"); !errors.Is(err, jetstream.ErrStreamNotFound) && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			t.Errorf("team B's durable is visible: %v", err)
		}
		// B's workload holds a delivery unacknowledged; A sends its ack.
		batch, err := billing.Fetch(1, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		var held jetstream.Msg
		for m := range batch.Messages() {
			held = m
		}
		if held == nil {
			t.Fatalf("team B's durable delivered nothing: %v", batch.Error())
		}
		if err := attacker.Publish(held.Reply(), []byte("+ACK")); err != nil {
			t.Fatal(err)
		}
		if err := attacker.Flush(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
		info, err := billing.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.NumAckPending != 1 || info.AckFloor.Consumer != 0 {
			t.Errorf("team A acknowledged team B's delivery: ack pending %d, ack floor %d", info.NumAckPending, info.AckFloor.Consumer)
		}
	})

	t.Run("inbox capture", func(t *testing.T) {
		// A subscribes to B's workload inbox in its own account; B's
		// request-reply on that inbox is untouched.
		seen := make(chan struct{}, 1)
		sub, err := attacker.Subscribe("_INBOX_team-b_consumer_billing.>", func(*nats.Msg) { seen <- struct{}{} })
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Unsubscribe()
		_ = attacker.Flush()
		bWorkload := user(t, h, accB, semantic.Permissions{
			Publish:   []string{"$JS.API.STREAM.INFO.team-b_orders"},
			Subscribe: []string{"_INBOX_team-b_consumer_billing.>"},
		}, nats.CustomInboxPrefix("_INBOX_team-b_consumer_billing"))
		if _, err := js(t, bWorkload).Stream(ctx, "team-b_orders"); err != nil {
			t.Fatal(err)
		}
		select {
		case <-seen:
			t.Error("team A saw a reply on team B's inbox")
		case <-time.After(300 * time.Millisecond):
		}
	})

	t.Run("the manager's user does only what the manager needs", func(t *testing.T) {
		errs := make(chan error, 4)
		nc := connect(t, h.url, nats.UserJWTAndSeed(mustManagerUser(t, h, "team-a")),
			nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err }))
		if err := nc.Publish("team-a.events", []byte("from the manager")); err != nil {
			t.Fatal(err)
		}
		_ = nc.Flush()
		select {
		case err := <-errs:
			if !errors.Is(err, nats.ErrPermissionViolation) {
				t.Errorf("publish on a Topic subject: %v", err)
			}
		case <-time.After(3 * time.Second):
			t.Error("the manager's user published on a Topic's subject unrefused")
		}
		if _, err := nc.SubscribeSync("team-a.events"); err != nil {
			t.Fatal(err)
		}
		_ = nc.Flush()
		select {
		case err := <-errs:
			if !errors.Is(err, nats.ErrPermissionViolation) {
				t.Errorf("subscribe to a Topic subject: %v", err)
			}
		case <-time.After(3 * time.Second):
			t.Error("the manager's user subscribed to a Topic's subject unrefused")
		}
	})
}

func mustManagerUser(t *testing.T, h *hub, namespace string) (string, string) {
	t.Helper()
	acc, err := h.authority.Account(namespace)
	if err != nil {
		t.Fatal(err)
	}
	userJWT, seed, err := acc.ManagerUser("hubflow-manager")
	if err != nil {
		t.Fatal(err)
	}
	return userJWT, seed
}

// The limits the authority is given are the ones the server enforces, and
// a push without a resolver to take it fails, naming what is missing.
func TestTenantLimitsAndPushErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h := startHub(t, tenancy.Limits{MemoryStorage: -1, DiskStorage: -1, Streams: 1, Consumers: -1}, false)
	_, mgr := h.tenant(t, "small")
	j := js(t, mgr)
	if _, err := j.CreateStream(ctx, jetstream.StreamConfig{Name: "small_one", Subjects: []string{"small.one"}}); err != nil {
		t.Fatal(err)
	}
	_, err := j.CreateStream(ctx, jetstream.StreamConfig{Name: "small_two", Subjects: []string{"small.two"}})
	if err == nil || !strings.Contains(err.Error(), "maximum number of streams") {
		t.Errorf("a second stream under a limit of one: %v", err)
	}

	// A user of the application account is no system user: no resolver answers it.
	acc, _ := h.authority.Account("other")
	token, _ := h.authority.JWT(acc)
	stranger := user(t, h, mustAccount(t, h, "small"), semantic.Permissions{Publish: []string{">"}, Subscribe: []string{">"}})
	if err := tenancy.Push(ctx, stranger, token); err == nil || !strings.Contains(err.Error(), "system-account user") {
		t.Errorf("a push by a non-system user: %v", err)
	}
}

func mustAccount(t *testing.T, h *hub, namespace string) *tenancy.Account {
	t.Helper()
	acc, err := h.authority.Account(namespace)
	if err != nil {
		t.Fatal(err)
	}
	return acc
}
