package faults

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
	"github.com/hubflow/hubflow/internal/credentials"
	"github.com/hubflow/hubflow/internal/semantic"
	"github.com/hubflow/hubflow/internal/testnats"
	"github.com/hubflow/hubflow/pkg/hubflow"
)

// credsTTL is short so that an outage of a few seconds outlives the
// credentials the clients connected with (JWT expiry counts in seconds).
const credsTTL = 3 * time.Second

// TestOutageLongerThanTheCredentialTTL: the clients hold short-lived
// least-privilege credentials that the operator renews in the mounted
// Secret (here: a file rewritten every third of the TTL, as the kubelet
// updates a mounted Secret). The hub is unreachable for more than twice the
// TTL, so the credentials each client connected with have expired when it
// comes back; the server also ends every connection whose JWT expires
// while it is up. The clients must reconnect with the renewed file, and
// afterwards each semantic's promise holds and every failed Publish says
// "not stored" or "outcome unknown" consistently with the stream.
func TestOutageLongerThanTheCredentialTTL(t *testing.T) {
	for _, sem := range []hubflowv1.DeliverySemantic{hubflowv1.ExactlyOnce, hubflowv1.AtLeastOnce, hubflowv1.AtMostOnce} {
		t.Run(string(sem), func(t *testing.T) {
			trust, err := testnats.NewTrust()
			if err != nil {
				t.Fatal(err)
			}
			hub := operatorHub(t, trust)
			js := adminJS(t, hub, trust)
			proxy := startProxy(t, strings.TrimPrefix(hub.URL(), "nats://"))
			tu := outageTuning
			tu.inbox = true
			f, err := newTunedFlow(sem, proxy.URL(), tu)
			if err != nil {
				t.Fatal(err)
			}
			f.account = trust.AccountKey
			issuer, err := credentials.NewIssuer(trust.SigningSeed(), trust.AccountKey, credsTTL)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			r := &renewer{t: t, issuer: issuer, files: map[string]semantic.Permissions{
				filepath.Join(dir, "producer.creds"): semantic.ProducerPermissions(f.producerPolicy, f.producer.Inbox),
				filepath.Join(dir, "consumer.creds"): semantic.ConsumerPermissions(sem, f.stream.Name, f.durable.Durable, f.consumer.Inbox),
			}}
			r.start()
			f.producerOpts = []hubflow.ProducerOption{hubflow.WithCredsFile(filepath.Join(dir, "producer.creds"))}
			f.consumerOpts = []hubflow.ConsumerOption{hubflow.WithCredsFile(filepath.Join(dir, "consumer.creds"))}

			lf := startLongFlow(t, hub, proxy, js, f, trust.AccountKey, 100000)
			down := credsTTL * 5 / 2
			// No deaf spell first: a client whose JWT expires then is
			// cut off by the server and cannot reconnect through a network
			// that drops the hub's half of the handshake, which would be a
			// longer outage than the one under test. Lost acknowledgements
			// are TestOutageLongerThanTheDuplicateWindow's.
			lf.outage(down, 0)
			lf.awaitAcked(200) // the producers came back with renewed credentials
			res := lf.finish()
			r.stop()
			t.Logf("%s: hub down for %s, credential TTL %s (%d renewals), %d Publish calls started during the outage; producer reconnects %d\n%s",
				sem, down, credsTTL, r.renewals(), lf.callsDuringOutage(), lf.p.Conn().Stats().Reconnects, res)
			lf.checkPromise(res)
			if lf.callsDuringOutage() == 0 {
				t.Error("no Publish call during the outage: the case proves nothing")
			}
		})
	}
}

// operatorHub runs a one-node hub in operator (JWT) mode.
func operatorHub(t *testing.T, trust *testnats.Trust) *testnats.Cluster {
	t.Helper()
	return oneNode(t, func(dir string) (*testnats.Server, error) { return testnats.StartOperatorMode(dir, trust) })
}

// adminJS is the test's own unrestricted, long-lived connection to the
// account, straight to the hub (not through the proxy).
func adminJS(t *testing.T, hub *testnats.Cluster, trust *testnats.Trust) jetstream.JetStream {
	t.Helper()
	creds, err := trust.UserCreds("faults-admin", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return testnats.ConnectWith(t, hub.URL(), testnats.UserJWTAndSeed(t, creds))
}

// renewer plays the operator and the kubelet: it mints fresh credentials
// for each file every third of the TTL and swaps them in atomically, as a
// mounted Secret is updated.
type renewer struct {
	t      *testing.T
	issuer *credentials.Issuer
	files  map[string]semantic.Permissions

	mu    sync.Mutex
	count int
	quit  chan struct{}
	done  chan struct{}
}

func (r *renewer) start() {
	r.renew() // the files exist before the clients start
	r.quit, r.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(r.done)
		tick := time.NewTicker(credsTTL / 3)
		defer tick.Stop()
		for {
			select {
			case <-r.quit:
				return
			case <-tick.C:
				r.renew()
			}
		}
	}()
	r.t.Cleanup(r.stop)
}

func (r *renewer) stop() {
	select {
	case <-r.quit:
	default:
		close(r.quit)
		<-r.done
	}
}

func (r *renewer) renew() {
	for path, perms := range r.files {
		c, err := r.issuer.Issue(filepath.Base(path), perms, time.Now())
		if err == nil {
			tmp := path + ".new"
			if err = os.WriteFile(tmp, c.Creds, 0o600); err == nil {
				err = os.Rename(tmp, path)
			}
		}
		if err != nil {
			r.t.Errorf("renewing %s: %v", path, err)
			return
		}
	}
	r.mu.Lock()
	r.count++
	r.mu.Unlock()
}

func (r *renewer) renewals() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.count
}
