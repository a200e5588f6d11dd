package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
	"github.com/hubflow/hubflow/controllers"
	"github.com/hubflow/hubflow/internal/gateway"
	"github.com/hubflow/hubflow/internal/semantic"
	"github.com/hubflow/hubflow/internal/testhub"
	"github.com/hubflow/hubflow/internal/testkube"
	"github.com/hubflow/hubflow/internal/testnats"
)

// The gateway runs against a real API server (TokenReview, Topics and
// Producers the real manager made Ready) and a real nats-server.
var (
	k8s     client.Client
	hubNATS *testnats.Server
	js      jetstream.JetStream
	ctx     = context.Background()
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	stack, err := testhub.StartStack(controllers.Options{ResyncInterval: time.Hour, MaxConcurrentReconciles: 2})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer stack.Stop()
	k8s, hubNATS = stack.Env.Client, stack.NATS
	nc, err := nats.Connect(hubNATS.URL())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer nc.Close()
	js, _ = jetstream.New(nc)
	return m.Run()
}

// startGateway serves a gateway on its own NATS connection.
func startGateway(t *testing.T) (*gateway.Gateway, *nats.Conn, string) {
	t.Helper()
	nc, err := nats.Connect(hubNATS.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	g, err := gateway.New(gateway.Config{Reader: k8s, NATS: nc, Auth: &gateway.TokenReviewer{Client: k8s, CacheFor: time.Minute},
		Registry: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	return g, nc, srv.URL
}

// token mints a ServiceAccount token, as the kubelet projects one into a
// Pod, for the given audience.
func token(t *testing.T, ns, sa, audience string) string {
	t.Helper()
	account := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: sa}}
	if err := k8s.Create(ctx, account); client.IgnoreAlreadyExists(err) != nil {
		t.Fatal(err)
	}
	tr := &authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{Audiences: []string{audience}}}
	if err := k8s.SubResource("token").Create(ctx, account, tr); err != nil {
		t.Fatal(err)
	}
	return tr.Status.Token
}

type answer struct {
	code       int
	retryAfter string
	body       map[string]any
}

func post(t *testing.T, url, tok string, body []byte, header http.Header) answer {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	for k, v := range header {
		req.Header[k] = v
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := answer{code: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After")}
	if err := json.Unmarshal(raw, &a.body); err != nil {
		t.Fatalf("answer %d is not JSON: %q", resp.StatusCode, raw)
	}
	return a
}

// flow creates a Topic and a Producer that lets serviceaccount "checkout"
// publish through the gateway, and waits for both to be Ready.
func flow(t *testing.T, ns, name string, sem hubflowv1.DeliverySemantic, edit func(*hubflowv1.Topic, *hubflowv1.Producer)) {
	t.Helper()
	topic := testkube.Topic(ns, name, sem)
	p := testkube.Producer(ns, name+"-http", name)
	p.Spec.Gateway = &hubflowv1.GatewayAccess{ServiceAccounts: []string{"checkout"}}
	if edit != nil {
		edit(topic, p)
	}
	for _, o := range []client.Object{topic, p} {
		if err := k8s.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	for _, o := range []client.Object{topic, p} {
		testkube.Eventually(t, 30*time.Second, func() error {
			if err := k8s.Get(ctx, client.ObjectKeyFromObject(o), o); err != nil {
				return err
			}
			for _, c := range conditionsOf(o) {
				if c.Type == hubflowv1.ConditionReady && c.Status == metav1.ConditionTrue {
					return nil
				}
			}
			return fmt.Errorf("%s not Ready: %v", o.GetName(), conditionsOf(o))
		})
	}
}

func conditionsOf(o client.Object) []metav1.Condition {
	switch v := o.(type) {
	case *hubflowv1.Topic:
		return v.Status.Conditions
	case *hubflowv1.Producer:
		return v.Status.Conditions
	}
	return nil
}

func messagesURL(base, ns, topic string) string {
	return fmt.Sprintf("%s/v1/namespaces/%s/topics/%s/messages", base, ns, topic)
}

// Each semantic answers as it promises: ExactlyOnce needs an
// Idempotency-Key and stores a retry once, saying it was a duplicate;
// AtLeastOnce answers once stored; AtMostOnce answers at once.
func TestPublishKeepsEachSemantic(t *testing.T) {
	ns := testkube.Namespace(t, k8s)
	flow(t, ns, "payments", hubflowv1.ExactlyOnce, func(topic *hubflowv1.Topic, _ *hubflowv1.Producer) {
		topic.Spec.Retention = &hubflowv1.RetentionLimits{MaxMessageSize: ptr(resource.MustParse("1Ki"))}
	})
	flow(t, ns, "emails", hubflowv1.AtLeastOnce, nil)
	flow(t, ns, "clicks", hubflowv1.AtMostOnce, nil)
	_, _, base := startGateway(t)
	tok := token(t, ns, "checkout", gateway.Audience)

	if a := post(t, messagesURL(base, ns, "payments"), tok, []byte("pay 10"), nil); a.code != http.StatusBadRequest || !strings.Contains(fmt.Sprint(a.body["error"]), "Idempotency-Key") {
		t.Errorf("ExactlyOnce without a key: %d %v", a.code, a.body)
	}
	key := http.Header{"Idempotency-Key": {"order-1"}}
	first := post(t, messagesURL(base, ns, "payments"), tok, []byte("pay 10"), key)
	retry := post(t, messagesURL(base, ns, "payments"), tok, []byte("pay 10"), key)
	if first.code != http.StatusCreated || first.body["stored"] != true || first.body["duplicate"] != nil {
		t.Errorf("ExactlyOnce first publish: %d %v", first.code, first.body)
	}
	if retry.code != http.StatusOK || retry.body["duplicate"] != true || retry.body["sequence"] != first.body["sequence"] {
		t.Errorf("ExactlyOnce retry: %d %v, want 200 duplicate of sequence %v", retry.code, retry.body, first.body["sequence"])
	}
	s, err := js.Stream(ctx, semantic.StreamName(ns, "payments"))
	if err != nil {
		t.Fatal(err)
	}
	if n := s.CachedInfo().State.Msgs; n != 1 {
		t.Errorf("payments stream holds %d messages, want 1", n)
	}
	m, err := s.GetMsg(ctx, 1)
	if err != nil || m.Header.Get(nats.MsgIdHdr) != "order-1" || string(m.Data) != "pay 10" || m.Subject != ns+".payments" {
		t.Errorf("stored %+v %v", m, err)
	}
	if a := post(t, messagesURL(base, ns, "payments"), tok, bytes.Repeat([]byte("x"), 2048), http.Header{"Idempotency-Key": {"big"}}); a.code != http.StatusRequestEntityTooLarge {
		t.Errorf("2 KiB into a 1 KiB Topic: %d %v", a.code, a.body)
	}

	if a := post(t, messagesURL(base, ns, "emails"), tok, []byte("welcome"), nil); a.code != http.StatusCreated || a.body["stored"] != true || a.body["stream"] != semantic.StreamName(ns, "emails") {
		t.Errorf("AtLeastOnce: %d %v", a.code, a.body)
	}

	sub, err := hubNATSConn(t).SubscribeSync(ns + ".clicks")
	if err != nil {
		t.Fatal(err)
	}
	if a := post(t, messagesURL(base, ns, "clicks"), tok, []byte("click"), nil); a.code != http.StatusAccepted || a.body["stored"] != false {
		t.Errorf("AtMostOnce: %d %v", a.code, a.body)
	}
	if m, err := sub.NextMsg(5 * time.Second); err != nil || string(m.Data) != "click" {
		t.Errorf("AtMostOnce message not sent: %v", err)
	}
	for _, subject := range []string{ns + ".other", ns + ".emails..x", ns + ".emails.*", ns + ".emails.a%20b"} {
		if a := post(t, messagesURL(base, ns, "emails")+"?subject="+subject, tok, []byte("x"), nil); a.code != http.StatusBadRequest {
			t.Errorf("subject %q: %d %v, want 400", subject, a.code, a.body)
		}
	}
}

func hubNATSConn(t *testing.T) *nats.Conn {
	nc, err := nats.Connect(hubNATS.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// Only a token of a ServiceAccount a Producer names, minted for the
// gateway's audience, publishes; no NATS credentials are involved.
func TestCallersAreAuthenticated(t *testing.T) {
	ns, other := testkube.Namespace(t, k8s), testkube.Namespace(t, k8s)
	flow(t, ns, "emails", hubflowv1.AtLeastOnce, nil)
	_, _, base := startGateway(t)
	url := messagesURL(base, ns, "emails")
	for _, tc := range []struct {
		name, token string
		code        int
		says        string
	}{
		{"no token", "", http.StatusUnauthorized, "Bearer"},
		{"not a token", "garbage", http.StatusUnauthorized, "not valid"},
		{"the API server's audience", token(t, ns, "checkout", "https://kubernetes.default.svc"), http.StatusUnauthorized, "not valid"},
		{"a ServiceAccount no Producer names", token(t, ns, "intruder", gateway.Audience), http.StatusForbidden, "spec.gateway.serviceAccounts"},
		{"the same name in another namespace", token(t, other, "checkout", gateway.Audience), http.StatusForbidden, "may not publish to namespace"},
	} {
		a := post(t, url, tc.token, []byte("x"), nil)
		if a.code != tc.code || !strings.Contains(fmt.Sprint(a.body["error"]), tc.says) {
			t.Errorf("%s: %d %v, want %d saying %q", tc.name, a.code, a.body, tc.code, tc.says)
		}
	}
	if a := post(t, messagesURL(base, ns, "missing"), token(t, ns, "checkout", gateway.Audience), []byte("x"), nil); a.code != http.StatusNotFound {
		t.Errorf("a missing Topic: %d %v", a.code, a.body)
	}
}

// CloudEvents in binary and structured mode reach the stream in the NATS
// binding's binary mode: data as payload, attributes as ce- headers.
func TestCloudEventsAreKeptAsHeaders(t *testing.T) {
	ns := testkube.Namespace(t, k8s)
	flow(t, ns, "orders", hubflowv1.AtLeastOnce, nil)
	_, _, base := startGateway(t)
	tok := token(t, ns, "checkout", gateway.Audience)
	url := messagesURL(base, ns, "orders")
	binary := post(t, url, tok, []byte(`{"total":10}`), http.Header{"Ce-Specversion": {"1.0"}, "Ce-Id": {"e-1"}, "Ce-Source": {"/shop"},
		"Ce-Type": {"order.created"}, "Content-Type": {"application/json"}, "Traceparent": {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}})
	structured := post(t, url, tok, []byte(`{"specversion":"1.0","id":"e-2","source":"/shop","type":"order.paid","data":{"total":10},"priority":3}`),
		http.Header{"Content-Type": {"application/cloudevents+json"}})
	if binary.code != http.StatusCreated || structured.code != http.StatusCreated {
		t.Fatalf("binary %d %v, structured %d %v", binary.code, binary.body, structured.code, structured.body)
	}
	s, _ := js.Stream(ctx, semantic.StreamName(ns, "orders"))
	for seq, want := range map[uint64]map[string]string{
		1: {"ce-id": "e-1", "ce-type": "order.created", "ce-source": "/shop", "content-type": "application/json", "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
		2: {"ce-id": "e-2", "ce-type": "order.paid", "ce-specversion": "1.0", "ce-priority": "3", "content-type": "application/json"},
	} {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		for h, v := range want {
			if got := m.Header.Get(h); got != v {
				t.Errorf("message %d: header %s = %q, want %q", seq, h, got, v)
			}
		}
		if string(m.Data) != `{"total":10}` {
			t.Errorf("message %d data %q", seq, m.Data)
		}
	}
	if a := post(t, url, tok, []byte(`{"id":"e-3"}`), http.Header{"Content-Type": {"application/cloudevents+json"}}); a.code != http.StatusBadRequest {
		t.Errorf("a structured CloudEvent without specversion: %d %v", a.code, a.body)
	}
}

// A gateway without its hub connection, or shutting down, never claims a
// publish: 503 with Retry-After and readiness failing; a Producer's rate
// bound gives 429.
func TestUnavailableAndLimitedAreSaid(t *testing.T) {
	ns := testkube.Namespace(t, k8s)
	flow(t, ns, "emails", hubflowv1.ExactlyOnce, func(_ *hubflowv1.Topic, p *hubflowv1.Producer) {
		p.Spec.Gateway.RequestsPerSecond = ptr(int32(1))
	})
	tok := token(t, ns, "checkout", gateway.Audience)
	key := func(k string) http.Header { return http.Header{"Idempotency-Key": {k}} }

	_, _, base := startGateway(t)
	if a := post(t, messagesURL(base, ns, "emails"), tok, []byte("1"), key("a")); a.code != http.StatusCreated {
		t.Fatalf("first: %d %v", a.code, a.body)
	}
	if a := post(t, messagesURL(base, ns, "emails"), tok, []byte("2"), key("b")); a.code != http.StatusTooManyRequests || a.retryAfter == "" {
		t.Errorf("second within the second: %d %v Retry-After %q", a.code, a.body, a.retryAfter)
	}

	_, nc, base := startGateway(t)
	nc.Close() // what a lost hub connection looks like to the gateway
	if a := post(t, messagesURL(base, ns, "emails"), tok, []byte("3"), key("c")); a.code != http.StatusServiceUnavailable || a.retryAfter == "" || a.body["outcome"] != "not stored" {
		t.Errorf("hub unreachable: %d %v Retry-After %q", a.code, a.body, a.retryAfter)
	}
	if code := get(t, base+"/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("readyz without the hub: %d", code)
	}

	g2, _, base2 := startGateway(t)
	if code := get(t, base2+"/readyz"); code != http.StatusOK {
		t.Errorf("readyz: %d", code)
	}
	g2.Drain()
	if code := get(t, base2+"/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("readyz while draining: %d", code)
	}
	if a := post(t, messagesURL(base2, ns, "emails"), tok, []byte("4"), key("d")); a.code != http.StatusServiceUnavailable {
		t.Errorf("publish while draining: %d %v", a.code, a.body)
	}
}

func get(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func ptr[T any](v T) *T { return &v }

func contextWithCancel() (context.Context, context.CancelFunc) { return context.WithCancel(ctx) }
