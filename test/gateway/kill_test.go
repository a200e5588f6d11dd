package gateway_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
	"github.com/hubflow/hubflow/internal/semantic"
	"github.com/hubflow/hubflow/internal/testgateway"
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
	path := fmt.Sprintf("/v1/namespaces/%s/topics/orders/messages", ns)
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := range ids {
				id := fmt.Sprintf("m-%05d", i)
				// Worker w starts on its own replica and moves to the other on a retry.
				out := testgateway.PublishRetrying(httpc, []string{bases[w%2], bases[(w+1)%2]}, path, tok, id, sem, 51, 20*time.Millisecond)
				retries.Add(int64(out.Retries))
				if out.Err != nil {
					gaveUp.Add(1)
					t.Log(out.Err)
					continue
				}
				sent.Add(1)
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
