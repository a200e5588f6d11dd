package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
	"github.com/hubflow/hubflow/internal/gateway"
	"github.com/hubflow/hubflow/pkg/pushsig"
)

// The HTTP flow: a legacy system that only speaks HTTP publishes with curl
// through the gateway, and a webhook receives the messages pushed to it.
const (
	httpTopic          = "crm-leads"
	httpProducer       = "crm-intake"
	httpConsumer       = "crm-webhook"
	httpServiceAccount = "legacy-crm"
	httpSecret         = "crm-webhook-signing"
	httpLeads          = 5
	// httpFlakyLead is the lead the webhook first answers 503 for, so
	// its redelivery under the same key is seen.
	httpFlakyLead = 3
)

// httpResult is what the HTTP flow saw.
type httpResult struct {
	tool string // "curl", or "net/http" where curl is not installed
	// created and duplicate count the gateway's 201 and 200 answers; the
	// first lead is posted twice, as a client retrying after a timeout would.
	created, duplicate int
	// deliveries counts the webhook's requests, processed the leads it
	// processed (each key once), badSignatures the requests that did not
	// verify.
	deliveries, processed, badSignatures int
	twice                                int // leads processed more than once
}

func (r httpResult) kept() bool {
	return r.created == httpLeads && r.duplicate == 1 && r.processed == httpLeads && r.twice == 0 &&
		r.badSignatures == 0 && r.deliveries == httpLeads+1
}

// webhook is the endpoint: it checks each request's signature, drops a
// repeated Idempotency-Key as docs/gateway.md tells an endpoint to, and
// fails the flaky lead's first delivery.
type webhook struct {
	secret []byte
	mu     sync.Mutex
	res    *httpResult
	seen   map[string]int
	done   chan struct{}
}

func (w *webhook) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	key := r.Header.Get(gateway.IdempotencyKeyHeader)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.res.deliveries++
	if err := pushsig.Verify(r.Header.Get(pushsig.Header), key, body, time.Now(), 0, w.secret); err != nil {
		w.res.badSignatures++
		http.Error(rw, err.Error(), http.StatusUnauthorized)
		return
	}
	if key == fmt.Sprintf("lead-%d", httpFlakyLead) && r.Header.Get(gateway.HeaderDelivery) == "1" {
		http.Error(rw, "CRM database busy", http.StatusServiceUnavailable)
		return
	}
	w.seen[key]++
	switch w.seen[key] {
	case 1:
		w.res.processed++
		if w.res.processed == httpLeads {
			close(w.done)
		}
	case 2:
		w.res.twice++
	}
}

// runHTTPFlow declares the flow, starts a gateway on 127.0.0.1, posts the
// leads with curl and waits until the webhook has processed them.
func runHTTPFlow(ctx context.Context, p *platform) (httpResult, error) {
	res := httpResult{tool: "curl"}
	if _, err := exec.LookPath("curl"); err != nil {
		res.tool = "net/http"
	}
	progress("HTTP flow: %s posts leads through the gateway into Topic %s (ExactlyOnce); the gateway pushes them to a signed webhook", res.tool, httpTopic)
	k8s := p.env.Client
	hook := &webhook{secret: []byte("demo-shared-secret"), res: &res, seen: map[string]int{}, done: make(chan struct{})}
	hookURL, stopHook, err := serve(hook)
	if err != nil {
		return res, err
	}
	defer stopHook()
	if err := declareHTTPFlow(ctx, k8s, hookURL, hook.secret); err != nil {
		return res, err
	}
	nc, err := nats.Connect(p.cluster.URL(), nats.Name("hubflow-gateway (demo)"))
	if err != nil {
		return res, err
	}
	defer nc.Close()
	g, err := gateway.New(gateway.Config{Reader: k8s, NATS: nc, Auth: &gateway.TokenReviewer{Client: k8s, CacheFor: time.Minute},
		Registry: prometheus.NewRegistry()})
	if err != nil {
		return res, err
	}
	gatewayURL, stopGateway, err := serve(g)
	if err != nil {
		return res, err
	}
	defer stopGateway()
	pushCtx, stopPush := context.WithCancel(ctx)
	pushed := make(chan struct{})
	go func() {
		_ = (&gateway.Pusher{Reader: k8s, NATS: nc, Log: logr.Discard(), Interval: 500 * time.Millisecond, Registry: prometheus.NewRegistry()}).Run(pushCtx)
		close(pushed)
	}()
	defer func() { stopPush(); <-pushed }()

	token, err := serviceAccountToken(ctx, k8s)
	if err != nil {
		return res, err
	}
	url := fmt.Sprintf("%s/v1/namespaces/%s/topics/%s/messages", gatewayURL, demoNamespace, httpTopic)
	fmt.Printf("    curl -X POST -H 'Authorization: Bearer <%s token>' -H 'Idempotency-Key: lead-N' --data '{\"lead\":N}' %s\n", httpServiceAccount, url)
	for i := 1; i <= httpLeads+1; i++ {
		lead := i
		if i == httpLeads+1 {
			lead = 1 // lead 1 again: a client retrying after a lost answer
		}
		code, err := post(ctx, res.tool, url, token, fmt.Sprintf("lead-%d", lead), fmt.Sprintf(`{"lead":%d}`, lead))
		if err != nil {
			return res, err
		}
		switch code {
		case http.StatusCreated:
			res.created++
		case http.StatusOK:
			res.duplicate++
		default:
			return res, fmt.Errorf("the gateway answered %d to lead %d", code, lead)
		}
	}
	select {
	case <-hook.done:
	case <-time.After(30 * time.Second):
		return res, fmt.Errorf("the webhook processed %d of %d leads in 30s", res.processed, httpLeads)
	}
	time.Sleep(time.Second) // a repeat would come now
	hook.mu.Lock()
	defer hook.mu.Unlock()
	fmt.Printf("    %s: %d stored (201), %d retry answered duplicate (200); webhook: %d requests, %d bad signatures, lead-%d redelivered after its 503, %d processed, %d twice\n",
		res.tool, res.created, res.duplicate, res.deliveries, res.badSignatures, httpFlakyLead, res.processed, res.twice)
	return res, nil
}

func declareHTTPFlow(ctx context.Context, k8s client.Client, hookURL string, secret []byte) error {
	objs := []client.Object{
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: demoNamespace, Name: httpServiceAccount}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: demoNamespace, Name: httpSecret}, Data: map[string][]byte{"secret": secret}},
		&hubflowv1.Topic{ObjectMeta: metav1.ObjectMeta{Namespace: demoNamespace, Name: httpTopic},
			Spec: hubflowv1.TopicSpec{Semantic: hubflowv1.ExactlyOnce}},
		&hubflowv1.Producer{ObjectMeta: metav1.ObjectMeta{Namespace: demoNamespace, Name: httpProducer},
			Spec: hubflowv1.ProducerSpec{TopicRef: hubflowv1.TopicReference{Name: httpTopic},
				Gateway: &hubflowv1.GatewayAccess{ServiceAccounts: []string{httpServiceAccount}}}},
		&hubflowv1.Consumer{ObjectMeta: metav1.ObjectMeta{Namespace: demoNamespace, Name: httpConsumer},
			Spec: hubflowv1.ConsumerSpec{TopicRef: hubflowv1.TopicReference{Name: httpTopic},
				AckWait: &metav1.Duration{Duration: 3 * time.Second}, Backoff: []metav1.Duration{{Duration: time.Second}},
				Push: &hubflowv1.PushEndpoint{URL: hookURL, Signing: &hubflowv1.PushSigning{
					SecretRef: hubflowv1.SecretKeyReference{Name: httpSecret, Key: "secret"}}}}},
	}
	for _, o := range objs {
		if err := k8s.Create(ctx, o); err != nil {
			return fmt.Errorf("creating %T %s: %w", o, o.GetName(), err)
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		ready := 0
		for _, o := range objs[2:] {
			if err := k8s.Get(ctx, client.ObjectKeyFromObject(o), o); err != nil {
				return err
			}
			if readyCondition(o) {
				ready++
			}
		}
		if ready == 3 {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("the HTTP flow's Topic, Producer and Consumer are not Ready after 60s")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func readyCondition(o client.Object) bool {
	var conds []metav1.Condition
	switch o := o.(type) {
	case *hubflowv1.Topic:
		conds = o.Status.Conditions
	case *hubflowv1.Producer:
		conds = o.Status.Conditions
	case *hubflowv1.Consumer:
		conds = o.Status.Conditions
	}
	return meta.IsStatusConditionTrue(conds, hubflowv1.ConditionReady)
}

// serviceAccountToken mints a token for the gateway's audience, as the
// kubelet projects one into the legacy system's Pod.
func serviceAccountToken(ctx context.Context, k8s client.Client) (string, error) {
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: demoNamespace, Name: httpServiceAccount}}
	tr := &authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{Audiences: []string{gateway.Audience}}}
	if err := k8s.SubResource("token").Create(ctx, sa, tr); err != nil {
		return "", fmt.Errorf("minting the %s token: %w", httpServiceAccount, err)
	}
	return tr.Status.Token, nil
}

// post publishes one lead with curl (or net/http) and returns the status.
func post(ctx context.Context, tool, url, token, key, body string) (int, error) {
	if tool == "curl" {
		out, err := exec.CommandContext(ctx, "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST",
			"-H", "Authorization: Bearer "+token, "-H", "Idempotency-Key: "+key, "-H", "Content-Type: application/json",
			"--data", body, url).Output()
		if err != nil {
			return 0, fmt.Errorf("curl: %w", err)
		}
		var code int
		_, err = fmt.Sscan(strings.TrimSpace(string(out)), &code)
		return code, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Idempotency-Key", key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}

// serve serves h on 127.0.0.1 and returns its URL and how to stop it.
func serve(h http.Handler) (string, func(), error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	return "http://" + l.Addr().String(), func() { _ = srv.Close() }, nil
}
