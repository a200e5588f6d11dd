package gateway_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
	"github.com/hubflow/hubflow/internal/semantic"
	"github.com/hubflow/hubflow/internal/testkube"
)

// killMessages is modest so the suite stays in `make test`.
const killMessages = 600

// A gateway replica dies without drain in the middle of a stream of
// publishes; the clients go on with the other replica as docs/gateway.md
// says (AtLeastOnce/ExactlyOnce: a 503 or a connection error means retry,
// ExactlyOnce with the same Idempotency-Key; AtMostOnce retries only a
// refused connection, which sent nothing).
// The stream's content is then counted per message identity.
func TestReplicaKilledMidStream(t *testing.T) {
	for _, sem := range []hubflowv1.DeliverySemantic{hubflowv1.ExactlyOnce, hubflowv1.AtLeastOnce, hubflowv1.AtMostOnce} {
		t.Run(string(sem), func(t *testing.T) { replicaKilled(t, sem) })
	}
}

func replicaKilled(t *testing.T, sem hubflowv1.DeliverySemantic) {
	ns := testkube.Namespace(t, k8s)
	flow(t, ns, "orders", sem)
	tok := token(t, ns, "checkout")
	ga, nca := newGateway(t)
	a := httptest.NewServer(ga)
	gb, _ := newGateway(t)
	b := httptest.NewServer(gb)
	t.Cleanup(b.Close)
	bases := []string{a.URL, b.URL}

	httpc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 32}}
	var sent, retries, gaveUp atomic.Int64
	var killOnce sync.Once
	kill := func() {
		killOnce.Do(func() {
			// Abrupt: no drain, connections cut, the replica's hub link gone.
			a.Listener.Close()
			a.CloseClientConnections()
			nca.Close()
		})
	}
	ids := make(chan int)
	go func() {
		for i := 0; i < killMessages; i++ {
			if i == killMessages/3 {
				kill()
			}
			ids <- i
		}
		close(ids)
	}()
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := range ids {
				id := fmt.Sprintf("m-%05d", i)
				for attempt := 0; ; attempt++ {
					base := bases[(w+attempt)%2]
					code, err := publish(httpc, base+fmt.Sprintf("/v1/namespaces/%s/topics/orders/messages", ns), tok, id, sem)
					if err == nil && code < 300 {
						sent.Add(1)
						break
					}
					// A refused dial never sent anything: safe to retry for every semantic.
					var dial *net.OpError
					retryable := errors.As(err, &dial) && dial.Op == "dial" ||
						sem != hubflowv1.AtMostOnce && (err != nil || code == http.StatusServiceUnavailable)
					if !retryable || attempt > 50 {
						gaveUp.Add(1)
						t.Logf("%s: gave up after attempt %d: code %d err %v", id, attempt, code, err)
						break
					}
					retries.Add(1)
					time.Sleep(20 * time.Millisecond)
				}
			}
		}(w)
	}
	wg.Wait()
	kill()

	counts := stored(t, semantic.StreamName(ns, "orders"))
	lost, twice := 0, 0
	for i := 0; i < killMessages; i++ {
		switch n := counts[fmt.Sprintf("m-%05d", i)]; {
		case n == 0:
			lost++
		case n > 1:
			twice++
		}
	}
	t.Logf("%s: %d messages, %d answered 2xx, %d retries, %d given up; stored: %d lost, %d stored twice",
		sem, killMessages, sent.Load(), retries.Load(), gaveUp.Load(), lost, twice)
	if sem != hubflowv1.AtMostOnce && lost > 0 {
		t.Errorf("%s lost %d of %d messages", sem, lost, killMessages)
	}
	if sem != hubflowv1.AtLeastOnce && twice > 0 {
		t.Errorf("%s stored %d of %d messages twice", sem, twice, killMessages)
	}
}

// publish posts one message the way a plain client does; the payload is the
// message's identity and, for ExactlyOnce, its Idempotency-Key too.
func publish(c *http.Client, url, tok, id string, sem hubflowv1.DeliverySemantic) (int, error) {
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
