// Package tenancy_test runs the manager with one NATS account per namespace
// (--tenancy=namespace) against a real kube-apiserver (envtest) and an
// in-process nats-server in operator mode with the full account resolver:
// the manager is given an operator signing key and a root secret, never an
// account, and makes each namespace's account itself.
package tenancy_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
	"github.com/hubflow/hubflow/controllers"
	"github.com/hubflow/hubflow/internal/natsconn"
	"github.com/hubflow/hubflow/internal/semantic"
	"github.com/hubflow/hubflow/internal/tenancy"
	"github.com/hubflow/hubflow/internal/testenv"
	"github.com/hubflow/hubflow/internal/testhub"
	"github.com/hubflow/hubflow/internal/testkube"
	"github.com/hubflow/hubflow/internal/testnats"
	"github.com/hubflow/hubflow/pkg/binding"
)

const wait = 30 * time.Second

// stack is envtest, the operator-mode hub and a manager with tenancy.
type stack struct {
	k8s       client.Client
	env       *testenv.Env
	hub       *testnats.TenancyHub
	authority *tenancy.Authority // the same keys as the manager's: the test's view into each account
	manager   *testhub.Manager
}

func start(t *testing.T) *stack {
	t.Helper()
	ctrl.SetLogger(logr.Discard())
	env, err := testenv.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	s := &stack{k8s: env.Client, env: env, hub: testnats.StartTenancyHub(t)}
	s.startManager(t)
	t.Cleanup(func() {
		if s.manager != nil {
			_ = s.manager.Stop()
		}
	})
	return s
}

// startManager starts a manager as cmd/manager does with --tenancy=namespace,
// from the files alone.
func (s *stack) startManager(t *testing.T) {
	t.Helper()
	authority, err := tenancy.LoadAuthority(s.hub.OperatorKey, s.hub.Root, tenancy.Unlimited)
	if err != nil {
		t.Fatal(err)
	}
	s.authority = authority
	tenantConn := natsconn.Options{URL: s.hub.URL(), Name: "hubflow-manager", ReconnectWait: 100 * time.Millisecond}
	s.manager, err = testhub.StartWith(s.env.Config, s.env.Scheme,
		natsconn.Options{URL: s.hub.URL(), CredsFile: s.hub.SysCreds},
		controllers.Options{
			ResyncInterval: time.Hour, ObserveInterval: time.Second, MaxConcurrentReconciles: 2,
			Tenancy: &controllers.Tenancy{
				Authority: authority, CredentialsTTL: time.Hour,
				Connect: func(ctx context.Context, opts ...nats.Option) (*nats.Conn, error) {
					return tenantConn.Connect(ctx, opts...)
				},
			},
		})
	if err != nil {
		t.Fatal(err)
	}
}

// admin is an unrestricted user of namespace's account, as a platform
// team's nats CLI would hold.
func (s *stack) admin(t *testing.T, namespace string) (jetstream.JetStream, *tenancy.Account) {
	t.Helper()
	acc, err := s.authority.Account(namespace)
	if err != nil {
		t.Fatal(err)
	}
	issuer, err := acc.Issuer(time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	issued, err := issuer.Issue("test-admin", semantic.Permissions{Publish: []string{">"}, Subscribe: []string{">"}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	nc := testnats.ConnectCreds(t, s.hub.URL(), issued.Creds)
	js, _ := jetstream.New(nc)
	return js, acc
}

// bound reads obj's binding once it holds credentials.
func (s *stack) bound(t *testing.T, namespace, secret string) binding.Binding {
	t.Helper()
	var b binding.Binding
	testkube.Eventually(t, wait, func() error {
		var sec corev1.Secret
		if err := s.k8s.Get(context.Background(), client.ObjectKey{Namespace: namespace, Name: secret}, &sec); err != nil {
			return err
		}
		var err error
		if b, err = binding.Decode(sec.Data); err != nil {
			return err
		}
		if len(b.Creds) == 0 {
			return errors.New("no credentials yet")
		}
		return nil
	})
	return b
}

func (s *stack) ready(t *testing.T, objs ...client.Object) {
	t.Helper()
	for _, o := range objs {
		testkube.WaitCondition(t, s.k8s, wait, o, hubflowv1.ConditionReady, metav1.ConditionTrue, controllers.ReasonReady)
	}
}

// Each namespace's Topics live in its own account, which the manager made;
// the bindings' users belong to it and work there with the semantic's
// promise; an out-of-band deletion in an account is repaired; and what
// tenancy cannot do yet is refused with a reason, not half done.
func TestEachNamespaceGetsItsOwnAccount(t *testing.T) {
	ctx := context.Background()
	s := start(t)
	teamA, teamB := testkube.Namespace(t, s.k8s), testkube.Namespace(t, s.k8s)
	topicA := testkube.Topic(teamA, "orders", hubflowv1.ExactlyOnce)
	prod := testkube.Producer(teamA, "checkout", "orders")
	cons := testkube.Consumer(teamA, "billing", "orders")
	topicB := testkube.Topic(teamB, "orders", hubflowv1.AtLeastOnce)
	for _, o := range []client.Object{topicA, prod, cons, topicB} {
		if err := s.k8s.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	s.ready(t, topicA, prod, cons, topicB)
	streamA, streamB := semantic.StreamName(teamA, "orders"), semantic.StreamName(teamB, "orders")

	adminA, accA := s.admin(t, teamA)
	adminB, accB := s.admin(t, teamB)
	if accA.Public == accB.Public {
		t.Fatal("two namespaces share an account")
	}
	for _, c := range []struct {
		js         jetstream.JetStream
		account    string
		own, other string
	}{{adminA, teamA, streamA, streamB}, {adminB, teamB, streamB, streamA}} {
		if _, err := c.js.Stream(ctx, c.own); err != nil {
			t.Errorf("account of %s: its own stream %s: %v", c.account, c.own, err)
		}
		if _, err := c.js.Stream(ctx, c.other); !errors.Is(err, jetstream.ErrStreamNotFound) {
			t.Errorf("account of %s sees the other namespace's stream %s: %v", c.account, c.other, err)
		}
	}

	for _, c := range []struct {
		topic *hubflowv1.Topic
		acc   *tenancy.Account
	}{{topicA, accA}, {topicB, accB}} {
		if err := s.k8s.Get(ctx, client.ObjectKeyFromObject(c.topic), c.topic); err != nil {
			t.Fatal(err)
		}
		if st := c.topic.Status; st.Isolation != hubflowv1.IsolationNamespaceAccount || st.Account != c.acc.Public {
			t.Errorf("Topic %s/%s status: isolation %q, account %q; want %s in %s", c.topic.Namespace, c.topic.Name, st.Isolation, st.Account, hubflowv1.IsolationNamespaceAccount, c.acc.Public)
		}
	}

	// The bindings' users are users of team A's account, and do their jobs.
	pb := s.bound(t, teamA, "checkout-binding")
	cb := s.bound(t, teamA, "billing-binding")
	for _, b := range []binding.Binding{pb, cb} {
		token, err := jwt.ParseDecoratedJWT(b.Creds)
		if err != nil {
			t.Fatal(err)
		}
		claims, err := jwt.DecodeUserClaims(token)
		if err != nil {
			t.Fatal(err)
		}
		if claims.IssuerAccount != accA.Public || claims.Issuer != accA.SigningKey {
			t.Errorf("%s's user: account %s signed by %s, want account %s signed by %s", b.Role, claims.IssuerAccount, claims.Issuer, accA.Public, accA.SigningKey)
		}
	}
	producer, _ := jetstream.New(testnats.ConnectCreds(t, pb.URL, pb.Creds, nats.CustomInboxPrefix(pb.Inbox)))
	subject := teamA + ".orders"
	for i, id := range []string{"order-1", "order-1", "order-2"} {
		ack, err := producer.Publish(ctx, subject, fmt.Appendf(nil, "order %d", i), jetstream.WithMsgID(id))
		if err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		if ack.Stream != streamA {
			t.Errorf("publish %d acknowledged by %s, want %s", i, ack.Stream, streamA)
		}
		if want := i == 1; ack.Duplicate != want {
			t.Errorf("publish %d: duplicate %v, want %v", i, ack.Duplicate, want)
		}
	}
	consumerConn := testnats.ConnectCreds(t, cb.URL, cb.Creds, nats.CustomInboxPrefix(cb.Inbox))
	consumerJS, _ := jetstream.New(consumerConn)
	durable, err := consumerJS.Consumer(ctx, cb.Stream, cb.Durable)
	if err != nil {
		t.Fatal(err)
	}
	batch, err := durable.Fetch(2, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for m := range batch.Messages() {
		got = append(got, string(m.Data()))
		if err := m.DoubleAck(ctx); err != nil {
			t.Errorf("acknowledging %q: %v", m.Data(), err)
		}
	}
	if !slices.Equal(got, []string{"order 0", "order 2"}) {
		t.Errorf("team A's consumer got %q, want each order once", got)
	}
	// Team A's producer cannot publish into team B's Topic.
	if _, err := producer.Publish(ctx, teamB+".orders", []byte("forged")); err == nil {
		t.Error("team A's producer published into team B's Topic")
	}
	if info, err := adminB.Stream(ctx, streamB); err != nil || info.CachedInfo().State.Msgs != 0 {
		t.Errorf("team B's stream: %v, %v", info, err)
	}

	// A stream deleted out of band in team B's account comes back: the
	// account's own advisory watch sees it.
	if err := adminB.DeleteStream(ctx, streamB); err != nil {
		t.Fatal(err)
	}
	testkube.Eventually(t, wait, func() error {
		_, err := adminB.Stream(ctx, streamB)
		return err
	})

	// Dead letters need the one capture stream of a shared account: refused.
	dl := testkube.Consumer(teamA, "audit", "orders")
	dl.Spec.DeadLetter = &hubflowv1.DeadLetter{TopicRef: hubflowv1.TopicReference{Name: "orders-dead"}}
	if err := s.k8s.Create(ctx, dl); err != nil {
		t.Fatal(err)
	}
	c := testkube.WaitCondition(t, s.k8s, wait, dl, hubflowv1.ConditionReady, metav1.ConditionFalse, controllers.ReasonDeadLetterNeedsSharedAccount)
	if c.Message == "" {
		t.Error("the refusal says nothing")
	}
	if _, err := adminA.Consumer(ctx, streamA, "audit"); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Errorf("a durable exists for the refused Consumer: %v", err)
	}
}

// The accounts are derived, not stored: a new manager process finds every
// namespace's account, stream, durable and binding as the last one left
// them, and rewrites nothing.
func TestAManagerRestartFindsTheSameAccounts(t *testing.T) {
	ctx := context.Background()
	s := start(t)
	ns := testkube.Namespace(t, s.k8s)
	topic := testkube.Topic(ns, "orders", hubflowv1.AtLeastOnce)
	prod := testkube.Producer(ns, "checkout", "orders")
	cons := testkube.Consumer(ns, "billing", "orders")
	for _, o := range []client.Object{topic, prod, cons} {
		if err := s.k8s.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	s.ready(t, topic, prod, cons)
	before := s.bound(t, ns, "checkout-binding")
	producer, _ := jetstream.New(testnats.ConnectCreds(t, before.URL, before.Creds, nats.CustomInboxPrefix(before.Inbox)))
	if _, err := producer.Publish(ctx, ns+".orders", []byte("before")); err != nil {
		t.Fatal(err)
	}
	admin, _ := s.admin(t, ns)
	stream := semantic.StreamName(ns, "orders")
	info, err := admin.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	created := info.CachedInfo().Created

	if err := s.manager.Stop(); err != nil {
		t.Fatal(err)
	}
	s.manager = nil
	s.startManager(t)
	// The new manager reconciles everything once; give it the time to.
	testkube.Eventually(t, wait, func() error {
		if err := s.k8s.Get(ctx, client.ObjectKeyFromObject(cons), cons); err != nil {
			return err
		}
		if cons.Status.DurableName == "" {
			return errors.New("no durable in status")
		}
		return nil
	})
	s.ready(t, topic, prod, cons)
	info, err = admin.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	if info.CachedInfo().Created != created || info.CachedInfo().State.Msgs != 1 {
		t.Errorf("the stream after the restart: created %s (was %s), %d messages (want 1)", info.CachedInfo().Created, created, info.CachedInfo().State.Msgs)
	}
	after := s.bound(t, ns, "checkout-binding")
	if string(after.Creds) != string(before.Creds) {
		t.Error("the restart rewrote the producer's credentials")
	}
	if _, err := producer.Publish(ctx, ns+".orders", []byte("after")); err != nil {
		t.Errorf("the producer's user stopped working after the restart: %v", err)
	}
}
