package controllers

import (
	"cmp"
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/nats-io/nats.go"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/hubflow/hubflow/internal/credentials"
	"github.com/hubflow/hubflow/internal/hub"
	"github.com/hubflow/hubflow/internal/semantic"
)

// Options tune all three reconcilers.
type Options struct {
	// ResyncInterval is the backstop: how often each object is reconciled
	// even when nothing says it changed. Advisories repair deletions and
	// stream edits within seconds, the observer what advisories miss.
	ResyncInterval time.Duration
	// ObserveInterval is how often the observer lists the hub to collect
	// consumer lag and spot drift; 0 disables it.
	ObserveInterval time.Duration
	// MaxConcurrentReconciles per kind.
	MaxConcurrentReconciles int
	// Credentials mints each Producer's and Consumer's NATS user from an
	// account signing key. Nil for a hub without auth: bindings then carry
	// no credentials, and the objects say so.
	Credentials *credentials.Issuer
	// BindingURL is the NATS URL written into bindings: the one workloads
	// dial, which may differ from the manager's. Required.
	BindingURL string
	// ClusterName names this Kubernetes cluster in the owner metadata of
	// every stream and durable hubflow creates, so two clusters sharing one
	// NATS account never take over each other's objects. Empty means
	// DefaultClusterName.
	ClusterName string
	// WindowHoldGrace is how long a Topic keeps a duplicate window held for
	// an ExactlyOnce Producer after that Producer is deleted: its workloads
	// may go on retrying with the binding they have. Zero means the
	// credentials' lifetime when the manager mints credentials (they run
	// out by then), else DefaultWindowHoldGrace.
	WindowHoldGrace time.Duration
	// DeadLetterReplicas is the replica count of the stream that captures
	// the server's dead-letter announcements (1 when unset); give it the
	// replicas of the Topics whose dead letters matter.
	DeadLetterReplicas int
	// Tenancy, when set, puts each namespace's flows in a NATS account of
	// its own; the connection given to Setup is then a system-account
	// user's. Credentials must be nil: each account mints its own users.
	Tenancy *Tenancy
	// DeadLetterAckWait is how long the dead-letter mover has for one
	// message before it is handed out again (DefaultDeadLetterAckWait when
	// unset).
	DeadLetterAckWait time.Duration
}

// DefaultWindowHoldGrace is the hold after a Producer's deletion on a hub
// without auth, where nothing ends its workloads' access.
const DefaultWindowHoldGrace = 24 * time.Hour

// DefaultClusterName is the cluster name of a manager given none.
const DefaultClusterName = "default"

// Setup registers the Topic, Producer and Consumer reconcilers, the
// advisory watch that repairs out-of-band changes, and the lag collector.
// nc is the manager's one long-lived NATS connection.
func Setup(mgr ctrl.Manager, nc *nats.Conn, opts Options) error {
	if opts.Tenancy != nil {
		return setup(mgr, nc, nil, opts)
	}
	js, err := hub.New(nc)
	if err != nil {
		return err
	}
	return SetupWithClient(mgr, nc, js, opts)
}

// SetupWithClient is Setup with an explicit hub client (tests count its calls).
func SetupWithClient(mgr ctrl.Manager, nc *nats.Conn, js hub.Client, opts Options) error {
	if opts.Tenancy != nil {
		return errors.New("controllers: with Tenancy, the hub client is one per account: use Setup")
	}
	return setup(mgr, nc, js, opts)
}

// setup wires everything; js is nil with tenancy, where it is made here.
func setup(mgr ctrl.Manager, nc *nats.Conn, js hub.Client, opts Options) error {
	if opts.Tenancy != nil && opts.Credentials != nil {
		return errors.New("controllers: Tenancy and Credentials exclude each other: with tenancy every account mints its own users")
	}
	if opts.ResyncInterval <= 0 {
		return errors.New("controllers: ResyncInterval must be positive")
	}
	if opts.BindingURL == "" {
		return errors.New("controllers: BindingURL must be set")
	}
	if err := addIndexes(context.Background(), mgr); err != nil {
		return err
	}
	hubConn.Store(nc)
	triggers := newTriggers()
	var accounts *accountHub
	if opts.Tenancy != nil {
		accounts = newAccountHub(*opts.Tenancy, nc, func(ctx context.Context, tenant *nats.Conn) {
			if err := (&advisoryWatch{nc: tenant, client: mgr.GetClient(), triggers: triggers}).Start(ctx); err != nil {
				ctrl.LoggerFrom(ctx).Error(err, "watching a tenant account's advisories; drift there is repaired by the observer and the resync only")
			}
		})
		if err := mgr.Add(accounts); err != nil {
			return err
		}
		js = accounts
	}
	base := reconciler{
		client:     mgr.GetClient(),
		apiReader:  mgr.GetAPIReader(),
		scheme:     mgr.GetScheme(),
		hub:        js,
		recorder:   mgr.GetEventRecorder("hubflow"),
		resync:     opts.ResyncInterval,
		issuer:     opts.Credentials,
		bindingURL: opts.BindingURL,
		cluster:    cmp.Or(opts.ClusterName, DefaultClusterName),
		accounts:   accounts,
	}
	windowGrace := opts.WindowHoldGrace
	if windowGrace <= 0 && opts.Credentials != nil {
		windowGrace = opts.Credentials.TTL()
	}
	if windowGrace <= 0 && opts.Tenancy != nil {
		windowGrace = opts.Tenancy.CredentialsTTL
	}
	if windowGrace <= 0 {
		windowGrace = DefaultWindowHoldGrace
	}
	copts := controller.Options{
		MaxConcurrentReconciles: max(opts.MaxConcurrentReconciles, 1),
		// A failing reconcile retries quickly at first and at most every two
		// minutes, so a hub that comes back is noticed soon.
		RateLimiter: workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](100*time.Millisecond, 2*time.Minute),
	}
	if err := (&TopicReconciler{reconciler: base, windowGrace: windowGrace}).setup(mgr, copts, triggers.topics); err != nil {
		return err
	}
	letters, err := newDeadLetters(nc, mgr.GetClient(), base.recorder, base.cluster, opts.DeadLetterReplicas, opts.DeadLetterAckWait, triggers.consumers)
	if err != nil {
		return err
	}
	// With tenancy the capture stream would need one per account: dead
	// letters are refused there (the Consumer says so), and no mover runs.
	if accounts == nil {
		if err := mgr.Add(letters); err != nil {
			return err
		}
	}
	if err := (&ConsumerReconciler{reconciler: base, wakeTopics: triggers.topics, deadLetters: letters}).setup(mgr, copts, triggers.consumers); err != nil {
		return err
	}
	if err := (&ProducerReconciler{reconciler: base}).setup(mgr, copts, triggers.producers); err != nil {
		return err
	}
	if accounts == nil { // with tenancy, each account's connection has its own watch
		if err := mgr.Add(&advisoryWatch{nc: nc, client: mgr.GetClient(), triggers: triggers}); err != nil {
			return err
		}
	}
	if opts.ObserveInterval > 0 {
		return mgr.Add(&observer{client: mgr.GetClient(), hub: js, interval: opts.ObserveInterval, triggers: triggers, cluster: base.cluster})
	}
	return nil
}

// reconciler is what the three reconcilers share.
type reconciler struct {
	client client.Client
	// apiReader reads past the cache; used only for a binding Secret's
	// metadata when the cache cannot show it.
	apiReader  client.Reader
	scheme     *runtime.Scheme
	hub        hub.Client
	recorder   events.EventRecorder
	resync     time.Duration
	issuer     *credentials.Issuer
	bindingURL string
	cluster    string
	// accounts is the per-namespace accounts' hub with tenancy, else nil.
	accounts *accountHub
}

// issuerFor mints namespace's users: the one account's issuer on a shared
// hub, the namespace's own account's with tenancy, nil without auth.
func (r reconciler) issuerFor(ctx context.Context, namespace string) (*credentials.Issuer, error) {
	if r.accounts != nil {
		return r.accounts.issuer(ctx, namespace)
	}
	return r.issuer, nil
}

// owned stamps this cluster on a compiled stream's or durable's metadata.
func (r reconciler) owned(metadata map[string]string) map[string]string {
	metadata[semantic.ClusterKey] = r.cluster
	return metadata
}

// requeue schedules the backstop resync with ±10% jitter, so objects
// created together do not all resync in the same second.
func (r reconciler) requeue() ctrl.Result {
	jitter := time.Duration(rand.Int64N(int64(r.resync)/5+1)) - r.resync/10
	return ctrl.Result{RequeueAfter: r.resync + jitter}
}
