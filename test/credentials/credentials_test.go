package credentials_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
	"github.com/hubflow/hubflow/controllers"
	"github.com/hubflow/hubflow/internal/semantic"
	"github.com/hubflow/hubflow/internal/testkube"
	"github.com/hubflow/hubflow/pkg/binding"
)

// TestCredentials runs every scenario against the one manager, in
// parallel, then checks that no secret value reached the manager's logs,
// the events or any status.
func TestCredentials(t *testing.T) {
	t.Run("scenarios", func(t *testing.T) {
		t.Run("ProducerPublishesOnItsSubjectsAndNothingElse", testProducerMatrix)
		t.Run("ConsumerReadsItsDurableAndNothingElse", testConsumerMatrix)
		t.Run("AtMostOnceFlowNeedsNoAcks", testAtMostOnce)
		t.Run("RotationKeepsALiveProducerWorking", testRotation)
		t.Run("DeletionEndsAccess", testDeletion)
		t.Run("NarrowedScopeGetsNewCredentials", testNarrowedScope)
		t.Run("PolicyChangeKeepsCredentials", testPolicyChangeKeepsCredentials)
		t.Run("DeletedBindingIsRestoredWithNewCredentials", testRestore)
	})
	t.Run("NoSecretValueInLogsEventsOrStatus", testNoSecretLeaked)
}

func testProducerMatrix(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	stream := semantic.StreamName(ns, "orders")
	prod := newProducer(ns, "checkout", "orders")
	create(t, newTopic(ns, "orders", hubflowv1.ExactlyOnce), newTopic(ns, "refunds", hubflowv1.AtLeastOnce),
		prod, newConsumer(ns, "shipping", "orders"), newProducer(ns, "refunder", "refunds"))
	ready(t, prod)
	c := condition(t, prod, hubflowv1.ConditionCredentialsIssued, metav1.ConditionTrue, controllers.ReasonIssued)
	if prod.Status.Binding == nil || prod.Status.Binding.Name != "checkout-binding" || !strings.Contains(c.Message, "valid until") {
		t.Errorf("status.binding %+v, condition %q", prod.Status.Binding, c.Message)
	}

	dir := mount(t, ns, "checkout-binding")
	b, err := binding.Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	wantBinding := binding.Binding{
		Role: binding.RoleProducer, URL: bindingURL, Creds: b.Creds, Stream: stream,
		Subjects: []string{ns + ".orders", ns + ".orders.>"}, Semantic: "ExactlyOnce",
		Inbox: "_INBOX_" + ns + "_producer_checkout", WaitForAck: true, MessageID: true,
		AckTimeout: 5 * time.Second, Retries: 5, RetryWait: 500 * time.Millisecond, DuplicateWindow: 2 * time.Minute,
	}
	if !reflect.DeepEqual(b, wantBinding) {
		t.Errorf("binding\n got %+v\nwant %+v", b, wantBinding)
	}
	claims := userClaims(t, dir)
	signingKey, _ := trust.SigningKey.PublicKey()
	if claims.Issuer != signingKey || claims.IssuerAccount != trust.AccountKey || claims.Name != "hubflow producer "+ns+"/checkout" ||
		claims.Expires-claims.IssuedAt > int64(ttl/time.Second) || claims.Expires == 0 {
		t.Errorf("user JWT: issuer %s account %s name %q iat %d exp %d", claims.Issuer, claims.IssuerAccount, claims.Name, claims.IssuedAt, claims.Expires)
	}
	// Operators alert on the expiry the manager exports; it is the JWT's
	// (or a later one, once renewed).
	eventually(t, 10*time.Second, func() error {
		v, err := expiryMetric(ns, "checkout")
		if err != nil || int64(v) < claims.Expires || int64(v) > time.Now().Add(ttl+time.Minute).Unix() {
			return fmt.Errorf("hubflow_credentials_expiry_timestamp_seconds = %v (%v), want the JWT's expiry %d or a later renewal", v, err, claims.Expires)
		}
		return nil
	})

	w := connect(t, dir)
	// What a producer needs: publish with acks, and with message ids the
	// stream deduplicates.
	if ack := w.publish(ns+".orders", "order-1"); ack.Stream != stream {
		t.Errorf("acked by %s", ack.Stream)
	}
	w.publish(ns+".orders.eu", "order-2")
	if ack := w.publish(ns+".orders.eu", "order-2"); !ack.Duplicate {
		t.Error("a repeated message id must be acknowledged as a duplicate")
	}
	if err := w.nc.Publish(ns+".orders.us", []byte("fire and forget")); err != nil {
		t.Error(err)
	}

	// Everything else.
	w.denied("publish to another topic", ns+".refunds", func(c context.Context) error {
		_, err := w.js.Publish(c, ns+".refunds", []byte("x"))
		return err
	})
	w.denied("core publish outside its subjects", "elsewhere", corePublish(w, "elsewhere"))
	w.denied("read the stream", "$JS.API.STREAM.INFO."+stream, func(c context.Context) error {
		_, err := w.js.Stream(c, stream)
		return err
	})
	w.denied("delete the stream", "$JS.API.STREAM.DELETE."+stream, func(c context.Context) error {
		return w.js.DeleteStream(c, stream)
	})
	w.denied("create a consumer", "$JS.API.CONSUMER.CREATE."+stream+".intruder", func(c context.Context) error {
		_, err := w.js.CreateConsumer(c, stream, jetstream.ConsumerConfig{Durable: "intruder"})
		return err
	})
	w.denied("delete a consumer", "$JS.API.CONSUMER.DELETE."+stream+".shipping", func(c context.Context) error {
		return w.js.DeleteConsumer(c, stream, "shipping")
	})
	w.denied("look up a consumer's durable", "$JS.API.CONSUMER.INFO."+stream+".shipping", func(c context.Context) error {
		_, err := w.js.Consumer(c, stream, "shipping")
		return err
	})
	w.denied("pull from a consumer's durable", "$JS.API.CONSUMER.MSG.NEXT."+stream+".shipping", pull(w, stream, "shipping"))
	w.deniedSubscribe("subscribe to the topic directly", ns+".orders.>")
	w.deniedSubscribe("subscribe to another client's inbox", semantic.InboxPrefix(semantic.RoleProducer, ns, "refunder")+".>")
	w.deniedSubscribe("subscribe to the default inbox (the manager's replies)", "_INBOX.>")

	// The server's view: only the allowed publishes took effect.
	eventually(t, wait, func() error { return streamHolds(stream, 3) })
	if err := streamHolds(semantic.StreamName(ns, "refunds"), 0); err != nil {
		t.Error(err)
	}
	durableExists(t, stream, "shipping", true)
	durableExists(t, stream, "intruder", false)
}

func testConsumerMatrix(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	stream := semantic.StreamName(ns, "orders")
	shipping := newConsumer(ns, "shipping", "orders")
	shipping.Spec.Semantic = semPtr(hubflowv1.AtLeastOnce)
	billing := newConsumer(ns, "billing", "orders") // ExactlyOnce, the Topic's
	auditor := newConsumer(ns, "auditor", "refunds")
	create(t, newTopic(ns, "orders", hubflowv1.ExactlyOnce), newTopic(ns, "refunds", hubflowv1.AtLeastOnce),
		shipping, billing, auditor)
	for _, c := range []*hubflowv1.Consumer{shipping, billing, auditor} {
		ready(t, c)
		condition(t, c, hubflowv1.ConditionCredentialsIssued, metav1.ConditionTrue, controllers.ReasonIssued)
	}
	for i := range 3 {
		if _, err := admin.Publish(ctx, fmt.Sprintf("%s.orders.%d", ns, i), []byte("order")); err != nil {
			t.Fatal(err)
		}
	}

	dir := mount(t, ns, "shipping-binding")
	w := connect(t, dir)
	if w.b.Durable != "shipping" || w.b.Stream != stream || w.b.Ack != binding.AckExplicit ||
		w.b.Inbox != "_INBOX_"+ns+"_consumer_shipping" || w.b.URL != bindingURL {
		t.Errorf("binding %+v", w.b)
	}
	// What a consumer needs: look up its durable, pull, signal progress,
	// nak for a redelivery, ack.
	var cons jetstream.Consumer
	eventually(t, wait, func() error {
		var err error
		cons, err = w.js.Consumer(ctx, w.b.Stream, w.b.Durable)
		return err
	})
	msgs := fetch(t, cons, 3)
	if err := msgs[0].InProgress(); err != nil {
		t.Error(err)
	}
	for _, m := range msgs[:2] {
		if err := m.Ack(); err != nil {
			t.Error(err)
		}
	}
	if err := msgs[2].Nak(); err != nil {
		t.Error(err)
	}
	again := fetch(t, cons, 1)
	if md, _ := again[0].Metadata(); md == nil || md.NumDelivered != 2 {
		t.Errorf("want the nak'ed message redelivered, got %+v", md)
	}
	if err := again[0].Ack(); err != nil {
		t.Error(err)
	}
	eventually(t, wait, func() error {
		c, err := admin.Consumer(ctx, stream, "shipping")
		if err != nil {
			return err
		}
		if info := c.CachedInfo(); info.NumAckPending != 0 || info.NumPending != 0 || info.AckFloor.Stream != 3 {
			return fmt.Errorf("ack pending %d, pending %d, ack floor %d", info.NumAckPending, info.NumPending, info.AckFloor.Stream)
		}
		return nil
	})

	// An ExactlyOnce consumer double-acks: the confirmation comes back to
	// its inbox.
	wb := connect(t, mount(t, ns, "billing-binding"))
	if wb.b.Ack != binding.AckDoubleAck || !wb.b.IdempotencyKey {
		t.Errorf("billing binding %+v", wb.b)
	}
	var bcons jetstream.Consumer
	eventually(t, wait, func() error {
		var err error
		bcons, err = wb.js.Consumer(ctx, stream, "billing")
		return err
	})
	for _, m := range fetch(t, bcons, 3) {
		if err := m.DoubleAck(ctx); err != nil {
			t.Errorf("double ack: %v", err)
		}
	}

	// Everything else.
	w.denied("publish to its own topic", ns+".orders", func(c context.Context) error {
		_, err := w.js.Publish(c, ns+".orders", []byte("x"))
		return err
	})
	w.denied("publish to another topic", ns+".refunds", corePublish(w, ns+".refunds"))
	w.denied("look up another consumer's durable", "$JS.API.CONSUMER.INFO."+stream+".billing", func(c context.Context) error {
		_, err := w.js.Consumer(c, stream, "billing")
		return err
	})
	w.denied("pull from another consumer's durable", "$JS.API.CONSUMER.MSG.NEXT."+stream+".billing", pull(w, stream, "billing"))
	w.denied("pull from a durable on another topic", "$JS.API.CONSUMER.MSG.NEXT."+semantic.StreamName(ns, "refunds")+".auditor",
		pull(w, semantic.StreamName(ns, "refunds"), "auditor"))
	forged := "$JS.ACK." + stream + ".billing.1.1.1.1.0"
	w.denied("acknowledge another durable's message", forged, corePublish(w, forged))
	w.denied("delete the stream", "$JS.API.STREAM.DELETE."+stream, func(c context.Context) error {
		return w.js.DeleteStream(c, stream)
	})
	w.denied("create a consumer", "$JS.API.CONSUMER.CREATE."+stream+".intruder", func(c context.Context) error {
		_, err := w.js.CreateConsumer(c, stream, jetstream.ConsumerConfig{Durable: "intruder", AckPolicy: jetstream.AckExplicitPolicy})
		return err
	})
	w.denied("reconfigure its own durable", "$JS.API.CONSUMER.CREATE."+stream+".shipping", func(c context.Context) error {
		_, err := w.js.UpdateConsumer(c, stream, jetstream.ConsumerConfig{Durable: "shipping", AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: 1})
		return err
	})
	w.denied("delete its own durable", "$JS.API.CONSUMER.DELETE."+stream+".shipping", func(c context.Context) error {
		return w.js.DeleteConsumer(c, stream, "shipping")
	})
	w.deniedSubscribe("subscribe to the topic directly", ns+".orders.>")
	w.deniedSubscribe("subscribe to another client's inbox", wb.b.Inbox+".>")
	w.deniedSubscribe("subscribe to the default inbox (the manager's replies)", "_INBOX.>")
	w.deniedSubscribe("subscribe to the JetStream advisories", "$JS.EVENT.ADVISORY.>")

	// The server's view: nothing changed but the acknowledgements.
	if err := streamHolds(stream, 3); err != nil {
		t.Error(err)
	}
	if err := streamHolds(semantic.StreamName(ns, "refunds"), 0); err != nil {
		t.Error(err)
	}
	durableExists(t, stream, "shipping", true)
	durableExists(t, stream, "billing", true)
	durableExists(t, stream, "intruder", false)
	if c, err := admin.Consumer(ctx, stream, "shipping"); err != nil || c.CachedInfo().Config.MaxAckPending == 1 {
		t.Errorf("the durable was reconfigured (%v)", err)
	}
	if c, err := admin.Consumer(ctx, stream, "billing"); err != nil || c.CachedInfo().AckFloor.Stream != 3 {
		t.Errorf("billing's messages were not all acknowledged (%v)", err)
	}
}

// An AtMostOnce producer publishes without waiting for acks; an AtMostOnce
// consumer reads without acknowledging, and its user may not acknowledge.
func testAtMostOnce(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	stream := semantic.StreamName(ns, "clicks")
	prod := newProducer(ns, "browser", "clicks")
	cons := newConsumer(ns, "counter", "clicks")
	create(t, newTopic(ns, "clicks", hubflowv1.AtMostOnce), prod, cons)
	ready(t, prod)
	ready(t, cons)

	pw := connect(t, mount(t, ns, "browser-binding"))
	if pw.b.WaitForAck {
		t.Errorf("an AtMostOnce producer must not wait for acks: %+v", pw.b)
	}
	for range 2 {
		if err := pw.nc.Publish(ns+".clicks", []byte("click")); err != nil {
			t.Fatal(err)
		}
	}
	if err := pw.nc.Flush(); err != nil {
		t.Fatal(err)
	}

	cw := connect(t, mount(t, ns, "counter-binding"))
	if cw.b.Ack != binding.AckNone {
		t.Errorf("an AtMostOnce consumer must not ack: %+v", cw.b)
	}
	msgs := fetch(t, consumerOf(t, cw), 2)
	ackSubject := msgs[0].Reply()
	if !strings.HasPrefix(ackSubject, "$JS.ACK."+stream+".counter.") {
		t.Fatalf("reply subject %q", ackSubject)
	}
	cw.denied("acknowledge", ackSubject, corePublish(cw, ackSubject))
}

// A producer connected with credentials that are renewed and then expire
// goes on publishing: the server cuts the expired user, the client
// reconnects with the renewed file, and no publish is lost.
func testRotation(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	stream := semantic.StreamName(ns, "orders")
	prod := newProducer(ns, "steady", "orders")
	create(t, newTopic(ns, "orders", hubflowv1.ExactlyOnce), prod)
	ready(t, prod)
	dir := mount(t, ns, "steady-binding")
	first := userClaims(t, dir)
	firstExpiry := time.Unix(first.Expires, 0)
	w := connect(t, dir)

	published, afterReconnect := 0, 0
	for {
		w.publish(ns+".orders", fmt.Sprintf("m-%d", published))
		published++
		if w.nc.Stats().Reconnects > 0 {
			afterReconnect++
		}
		if afterReconnect >= 3 {
			break
		}
		if time.Now().After(firstExpiry.Add(wait)) {
			t.Fatalf("the server never disconnected the user whose credentials expired at %s", firstExpiry)
		}
		time.Sleep(200 * time.Millisecond)
	}
	second := userClaims(t, dir)
	if second.Subject == first.Subject {
		t.Fatal("the binding still holds the first user")
	}
	if second.IssuedAt >= first.Expires {
		t.Errorf("renewed at %d, not before the old credentials expired at %d", second.IssuedAt, first.Expires)
	}
	if err := streamHolds(stream, uint64(published)); err != nil {
		t.Errorf("%d publishes acknowledged: %v", published, err)
	}
	e := eventFor(t, prod, "CredentialsRotated")
	t.Logf("%d publishes, %d after the reconnect; %s", published, afterReconnect, e.Note)
}

// Deleting a Producer or Consumer ends its access: a Consumer's durable
// goes at once, and the credentials of both stop working when they expire,
// since nothing renews them. (envtest runs no garbage collector, so the
// binding Secrets stay; the mounted copies keep the last credentials, as a
// pod's volume does once its Secret is gone.)
func testDeletion(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	stream := semantic.StreamName(ns, "orders")
	prod := newProducer(ns, "leaver", "orders")
	cons := newConsumer(ns, "quitter", "orders")
	create(t, newTopic(ns, "orders", hubflowv1.AtLeastOnce), prod, cons)
	ready(t, prod)
	ready(t, cons)
	pdir, cdir := mount(t, ns, "leaver-binding"), mount(t, ns, "quitter-binding")
	pw, cw := connect(t, pdir), connect(t, cdir)
	pw.publish(ns+".orders", "before")
	fetch(t, consumerOf(t, cw), 1)[0].Ack()

	for _, o := range []client.Object{prod, cons} {
		if err := k8s.Delete(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, wait, func() error {
		if _, err := admin.Consumer(ctx, stream, "quitter"); !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return fmt.Errorf("durable still there (%v)", err)
		}
		return nil
	})
	lastExpiry := time.Unix(userClaims(t, pdir).Expires, 0)
	for _, dir := range []string{pdir, cdir} {
		eventually(t, ttl+wait, func() error {
			nc, err := nats.Connect(bindingURL, nats.UserCredentials(filepath.Join(dir, binding.KeyCreds)))
			if err == nil {
				nc.Close()
				return errors.New("the credentials still connect")
			}
			// Right at the expiry the server may still let the user in
			// and cut it a moment later; after it, it refuses outright.
			if !errors.Is(err, nats.ErrAuthorization) {
				return fmt.Errorf("connecting: %v, want an authorization violation", err)
			}
			return nil
		})
	}
	// The connections made before lost their access too.
	for _, w := range []*workload{pw, cw} {
		eventually(t, wait, func() error {
			if w.nc.IsConnected() {
				return fmt.Errorf("connection still %s", w.nc.Status())
			}
			return nil
		})
	}
	t.Logf("access ended; the last credentials expired at %s", lastExpiry.Format(time.RFC3339))
}

// Narrowing a Producer's subjects mints credentials with the new scope.
func testNarrowedScope(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	prod := newProducer(ns, "regional", "orders")
	eu, us := ns+".orders.eu", ns+".orders.us"
	prod.Spec.Subjects = []string{eu, us}
	create(t, newTopic(ns, "orders", hubflowv1.AtLeastOnce), prod)
	ready(t, prod)
	dir := mount(t, ns, "regional-binding")
	w := connect(t, dir)
	w.publish(eu, "1")
	w.publish(us, "2")

	prod.Spec.Subjects = []string{eu}
	if err := k8s.Update(ctx, prod); err != nil {
		t.Fatal(err)
	}
	eventually(t, wait, func() error {
		claims := userClaims(t, dir)
		b, err := binding.Read(dir)
		if err != nil {
			return err
		}
		if !slices.Equal(claims.Pub.Allow, []string{eu}) || !slices.Equal(b.Subjects, []string{eu}) {
			return fmt.Errorf("publish allowed on %v, binding subjects %v", claims.Pub.Allow, b.Subjects)
		}
		return nil
	})
	e := eventFor(t, prod, "CredentialsRotated", "permissions")
	t.Log(e.Note)

	narrowed := connect(t, dir)
	narrowed.publish(eu, "3")
	narrowed.denied("publish on the subject taken away", us, func(c context.Context) error {
		_, err := narrowed.js.Publish(c, us, []byte("x"))
		return err
	})
}

// A change to the binding's policy that leaves the scope alone updates the
// Secret in place and keeps the credentials: they are minted only when
// needed.
func testPolicyChangeKeepsCredentials(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	prod := newProducer(ns, "tuned", "orders")
	create(t, newTopic(ns, "orders", hubflowv1.AtLeastOnce), prod)
	ready(t, prod)
	dir := mount(t, ns, "tuned-binding")
	first := userClaims(t, dir)

	prod.Spec.Publish = &hubflowv1.PublishPolicy{Retries: ptrTo(int32(2))}
	if err := k8s.Update(ctx, prod); err != nil {
		t.Fatal(err)
	}
	eventually(t, wait, func() error {
		b, err := binding.Read(dir)
		if err != nil {
			return err
		}
		if b.Retries != 2 {
			return fmt.Errorf("retries %d", b.Retries)
		}
		return nil
	})
	eventFor(t, prod, "BindingUpdated")
	after := userClaims(t, dir)
	renewal := first.IssuedAt + int64(ttl*2/3/time.Second)
	if after.Subject != first.Subject && after.IssuedAt < renewal {
		t.Errorf("the credentials were replaced for a change that does not touch their scope")
	}
}

// A binding Secret deleted behind hubflow's back comes back, with new
// credentials that work.
func testRestore(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	cons := newConsumer(ns, "phoenix", "orders")
	create(t, newTopic(ns, "orders", hubflowv1.AtLeastOnce), cons)
	ready(t, cons)
	var s corev1.Secret
	eventually(t, wait, func() error {
		return k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "phoenix-binding"}, &s)
	})
	firstUser := userClaims(t, mount(t, ns, "phoenix-binding")).Subject
	if err := k8s.Delete(ctx, &s); err != nil {
		t.Fatal(err)
	}
	eventFor(t, cons, "BindingRestored")
	dir := mount(t, ns, "phoenix-binding")
	if userClaims(t, dir).Subject == firstUser {
		t.Error("the restored binding reuses the deleted Secret's user")
	}
	consumerOf(t, connect(t, dir))
}

// testNoSecretLeaked looks for every secret value the scenarios saw, and
// for anything shaped like a seed or a JWT, in the manager's logs (all
// verbosities), in every event, in the objects' status, and in the
// binding Secrets' keys other than creds.
func testNoSecretLeaked(t *testing.T) {
	known := secrets.list()
	if len(known) < 20 {
		t.Fatalf("only %d secret values collected: the scenarios did not run", len(known))
	}
	logs := managerLog.String()
	if !strings.Contains(logs, `"controller":"producer"`) || !strings.Contains(logs, "Reconcil") {
		t.Fatalf("the manager's log was not captured (%d bytes)", len(logs))
	}
	for _, leak := range leaks(logs, known) {
		t.Errorf("manager log: %s", leak)
	}

	var events eventsv1.EventList
	var coreEvents corev1.EventList
	if err := k8s.List(ctx, &events); err != nil {
		t.Fatal(err)
	}
	if err := k8s.List(ctx, &coreEvents); err != nil {
		t.Fatal(err)
	}
	issued := 0
	for _, e := range events.Items {
		if e.Reason == "CredentialsIssued" || e.Reason == "CredentialsRotated" {
			issued++
		}
		for _, leak := range leaks(fmt.Sprintf("%+v", e), known) {
			t.Errorf("event %s/%s: %s", e.Namespace, e.Name, leak)
		}
	}
	for _, e := range coreEvents.Items {
		for _, leak := range leaks(fmt.Sprintf("%+v", e), known) {
			t.Errorf("event %s/%s: %s", e.Namespace, e.Name, leak)
		}
	}
	if issued == 0 {
		t.Error("no credentials event found: the events were not looked at")
	}

	var producers hubflowv1.ProducerList
	var consumers hubflowv1.ConsumerList
	if err := k8s.List(ctx, &producers); err != nil {
		t.Fatal(err)
	}
	if err := k8s.List(ctx, &consumers); err != nil {
		t.Fatal(err)
	}
	for _, p := range producers.Items {
		for _, leak := range leaks(fmt.Sprintf("%+v", p), known) {
			t.Errorf("Producer %s/%s: %s", p.Namespace, p.Name, leak)
		}
	}
	for _, c := range consumers.Items {
		for _, leak := range leaks(fmt.Sprintf("%+v", c), known) {
			t.Errorf("Consumer %s/%s: %s", c.Namespace, c.Name, leak)
		}
	}

	var bindings corev1.SecretList
	if err := k8s.List(ctx, &bindings, client.MatchingLabels{controllers.BindingLabel: "true"}); err != nil {
		t.Fatal(err)
	}
	for _, s := range bindings.Items {
		for k, v := range s.Data {
			if k == binding.KeyCreds {
				continue
			}
			for _, leak := range leaks(string(v), known) {
				t.Errorf("Secret %s/%s key %s: %s", s.Namespace, s.Name, k, leak)
			}
		}
		for _, leak := range leaks(fmt.Sprintf("%+v %+v", s.ObjectMeta, s.StringData), known) {
			t.Errorf("Secret %s/%s metadata: %s", s.Namespace, s.Name, leak)
		}
	}
}

// corePublish is a fire-and-forget publish; its refusal arrives only as an
// asynchronous error, so the attempt waits until it is called off.
func corePublish(w *workload, subject string) func(context.Context) error {
	return func(c context.Context) error {
		if err := w.nc.Publish(subject, []byte("x")); err != nil {
			return err
		}
		if err := w.nc.FlushWithContext(c); err != nil {
			return err
		}
		<-c.Done()
		return c.Err()
	}
}

// pull asks a durable for a message the way a fetch does, without looking
// the durable up first.
func pull(w *workload, stream, durable string) func(context.Context) error {
	return func(c context.Context) error {
		inbox := w.nc.NewInbox()
		sub, err := w.nc.SubscribeSync(inbox)
		if err != nil {
			return err
		}
		defer sub.Unsubscribe()
		if err := w.nc.PublishRequest("$JS.API.CONSUMER.MSG.NEXT."+stream+"."+durable, inbox, []byte(`{"batch":1,"expires":1000000000}`)); err != nil {
			return err
		}
		_, err = sub.NextMsgWithContext(c)
		return err
	}
}

func consumerOf(t *testing.T, w *workload) jetstream.Consumer {
	t.Helper()
	var cons jetstream.Consumer
	eventually(t, wait, func() error {
		var err error
		cons, err = w.js.Consumer(ctx, w.b.Stream, w.b.Durable)
		return err
	})
	return cons
}

func fetch(t *testing.T, cons jetstream.Consumer, n int) []jetstream.Msg {
	t.Helper()
	var msgs []jetstream.Msg
	eventually(t, wait, func() error {
		batch, err := cons.Fetch(n-len(msgs), jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return err
		}
		for m := range batch.Messages() {
			msgs = append(msgs, m)
		}
		if len(msgs) < n {
			return fmt.Errorf("fetched %d of %d (%v)", len(msgs), n, batch.Error())
		}
		return nil
	})
	return msgs
}

func streamHolds(stream string, n uint64) error {
	s, err := admin.Stream(ctx, stream)
	if err != nil {
		return err
	}
	if got := s.CachedInfo().State.Msgs; got != n {
		return fmt.Errorf("stream %s holds %d messages, want %d", stream, got, n)
	}
	return nil
}

func durableExists(t *testing.T, stream, durable string, want bool) {
	t.Helper()
	_, err := admin.Consumer(ctx, stream, durable)
	switch {
	case want && err != nil:
		t.Errorf("durable %s: %v", durable, err)
	case !want && !errors.Is(err, jetstream.ErrConsumerNotFound):
		t.Errorf("durable %s exists (%v)", durable, err)
	}
}

func create(t *testing.T, objs ...client.Object) {
	t.Helper()
	for _, o := range objs {
		if err := k8s.Create(ctx, o); err != nil {
			t.Fatalf("create %T %s: %v", o, o.GetName(), err)
		}
	}
}

func ready(t *testing.T, obj client.Object) {
	t.Helper()
	condition(t, obj, hubflowv1.ConditionReady, metav1.ConditionTrue, controllers.ReasonReady)
}

// condition waits until obj's condition typ has the status and reason.
func condition(t *testing.T, obj client.Object, typ string, status metav1.ConditionStatus, reason string) metav1.Condition {
	t.Helper()
	return testkube.WaitCondition(t, k8s, wait, obj, typ, status, reason)
}

// eventFor waits for an event with reason about obj whose note holds every
// one of the words.
func eventFor(t *testing.T, obj client.Object, reason string, words ...string) eventsv1.Event {
	t.Helper()
	var found eventsv1.Event
	eventually(t, wait, func() error {
		var list eventsv1.EventList
		if err := k8s.List(ctx, &list, client.InNamespace(obj.GetNamespace())); err != nil {
			return err
		}
	next:
		for _, e := range list.Items {
			if e.Regarding.Name != obj.GetName() || e.Reason != reason {
				continue
			}
			for _, w := range words {
				if !strings.Contains(e.Note, w) {
					continue next
				}
			}
			found = e
			return nil
		}
		return fmt.Errorf("no %s event for %s among %d events", reason, obj.GetName(), len(list.Items))
	})
	return found
}

var (
	newTopic    = testkube.Topic
	newConsumer = testkube.Consumer
	newProducer = testkube.Producer
)

func semPtr(s hubflowv1.DeliverySemantic) *hubflowv1.DeliverySemantic { return &s }

func ptrTo[T any](v T) *T { return &v }

// expiryMetric reads a Producer's credential expiry from the manager's
// registry, as a Prometheus scrape would.
func expiryMetric(namespace, name string) (float64, error) {
	families, err := metrics.Registry.Gather()
	if err != nil {
		return 0, err
	}
	for _, f := range families {
		if f.GetName() != "hubflow_credentials_expiry_timestamp_seconds" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["kind"] == "Producer" && labels["namespace"] == namespace && labels["name"] == name {
				return m.GetGauge().GetValue(), nil
			}
		}
	}
	return 0, fmt.Errorf("no expiry series for Producer %s/%s", namespace, name)
}
