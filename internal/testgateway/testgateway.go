// Package testgateway is a plain HTTP client of the gateway, for the tests
// that drive it under faults: it publishes and retries exactly as
// docs/gateway.md tells a client in any language to, with no hubflow code
// on its side.
package testgateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
)

// Token mints a token of ServiceAccount ns/sa for audience, as the kubelet
// projects one into a Pod; the ServiceAccount is created if missing.
func Token(t testing.TB, k8s client.Client, ns, sa, audience string) string {
	t.Helper()
	account := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: sa}}
	if err := k8s.Create(context.Background(), account); client.IgnoreAlreadyExists(err) != nil {
		t.Fatal(err)
	}
	tr := &authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{Audiences: []string{audience}}}
	if err := k8s.SubResource("token").Create(context.Background(), account, tr); err != nil {
		t.Fatal(err)
	}
	return tr.Status.Token
}

// Publish posts one message; the payload is the message's identity and,
// for ExactlyOnce, its Idempotency-Key too. It returns the HTTP status.
func Publish(c *http.Client, url, tok, id string, sem hubflowv1.DeliverySemantic) (int, error) {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader([]byte(id)))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	if sem == hubflowv1.ExactlyOnce {
		req.Header.Set("Idempotency-Key", id)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// Retryable says whether a client may send a message again after this
// outcome of sending it: a refused dial sent nothing, so always; otherwise
// AtLeastOnce and ExactlyOnce retry a connection error or a 503 (ExactlyOnce
// with the same Idempotency-Key), and AtMostOnce never does, since the
// first request may have been stored.
func Retryable(sem hubflowv1.DeliverySemantic, code int, err error) bool {
	var dial *net.OpError
	if errors.As(err, &dial) && dial.Op == "dial" {
		return true
	}
	return sem != hubflowv1.AtMostOnce && (err != nil || code == http.StatusServiceUnavailable)
}

// Outcome is what PublishRetrying did for one message.
type Outcome struct {
	Retries int
	// Err is the last error when the client gave up; nil once a 2xx came.
	Err error
}

// PublishRetrying publishes id to path on the first of bases, and on a
// retryable outcome tries again on the next one (a client behind a Service
// reaches another replica), up to attempts times, pause apart.
func PublishRetrying(c *http.Client, bases []string, path, tok, id string, sem hubflowv1.DeliverySemantic, attempts int, pause time.Duration) Outcome {
	var out Outcome
	for attempt := 0; ; attempt++ {
		code, err := Publish(c, bases[attempt%len(bases)]+path, tok, id, sem)
		if err == nil && code < 300 {
			return out
		}
		retry := Retryable(sem, code, err)
		if err == nil {
			err = fmt.Errorf("HTTP %d", code)
		}
		if !retry || attempt+1 >= attempts {
			out.Err = fmt.Errorf("%s: gave up after %d attempt(s): %w", id, attempt+1, err)
			return out
		}
		out.Retries++
		time.Sleep(pause)
	}
}

// StoredPayloads reads stream from its start and counts its messages per
// payload (the message's identity in these tests). On a cluster a read
// right after a leader change can meet "no responders" while the new
// leader settles: the whole read is tried again, for up to 30 s.
func StoredPayloads(t testing.TB, js jetstream.JetStream, stream string) map[string]int {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		counts, err := readPayloads(js, stream)
		if err == nil {
			return counts
		}
		if time.Now().After(deadline) {
			t.Fatalf("reading %s back: %v", stream, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func readPayloads(js jetstream.JetStream, stream string) (map[string]int, error) {
	ctx := context.Background()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, err
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return nil, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, err
	}
	counts := map[string]int{}
	for n := uint64(0); n < info.State.Msgs; {
		batch, err := c.Fetch(500, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return nil, err
		}
		got := 0
		for m := range batch.Messages() {
			counts[string(m.Data())]++
			got++
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return nil, fmt.Errorf("after %d messages: %w", n, err)
		}
		if got == 0 {
			return nil, fmt.Errorf("%d of %d messages, then nothing came", n, info.State.Msgs)
		}
		n += uint64(got)
	}
	return counts, nil
}
