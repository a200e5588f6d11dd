package controllers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"k8s.io/apimachinery/pkg/util/validation"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/hubflow/hubflow/internal/credentials"
	"github.com/hubflow/hubflow/internal/hub"
	"github.com/hubflow/hubflow/internal/tenancy"
)

// Tenancy puts each namespace's flows in a NATS account of its own (see
// internal/tenancy and docs/tenancy.md). The manager's connection given to
// Setup is then a system-account user's: it pushes the accounts; the
// streams and durables are managed over one connection per account.
type Tenancy struct {
	Authority *tenancy.Authority
	// CredentialsTTL is the lifetime of each Producer's and Consumer's user.
	CredentialsTTL time.Duration
	// Connect opens a connection to the servers the manager's own
	// connection uses, with opts (the account user's login) added last.
	// It must retry forever (natsconn does).
	Connect func(ctx context.Context, opts ...nats.Option) (*nats.Conn, error)
}

// pushTimeout bounds the resolver's answer to an account push.
const pushTimeout = 10 * time.Second

// accountHub is the hub client of a manager with tenancy: each call goes to
// the account of the namespace its stream belongs to (a stream's name starts
// with its namespace, a DNS label, then "_"). A namespace's account is
// pushed and connected on its first call; a failure is retried on the next.
type accountHub struct {
	tenancy Tenancy
	system  *nats.Conn
	// watch runs the advisory watch of one account's connection until ctx ends.
	watch func(ctx context.Context, nc *nats.Conn)

	started chan struct{}
	ctx     context.Context // the manager's, once started

	mu      sync.Mutex
	tenants map[string]*tenantHub
}

type tenantHub struct {
	ready     chan struct{}
	err       error
	namespace string
	account   string
	nc        *nats.Conn
	client    *hub.JetStream
	issuer    *credentials.Issuer

	mu     sync.Mutex
	pushed time.Time // the account's last push
}

var _ hub.Client = (*accountHub)(nil)

func newAccountHub(t Tenancy, system *nats.Conn, watch func(context.Context, *nats.Conn)) *accountHub {
	return &accountHub{tenancy: t, system: system, watch: watch, started: make(chan struct{}), tenants: map[string]*tenantHub{}}
}

// NeedLeaderElection: the accounts serve the reconcilers, which run on the leader.
func (a *accountHub) NeedLeaderElection() bool { return true }

// Start makes the manager's context the one account connections live in,
// and closes them when it ends.
func (a *accountHub) Start(ctx context.Context) error {
	a.ctx = ctx
	close(a.started)
	<-ctx.Done()
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, t := range a.tenants {
		select {
		case <-t.ready:
			if t.nc != nil {
				t.nc.Close()
			}
		default:
		}
	}
	return nil
}

// tenant is namespace's account, pushed and connected.
func (a *accountHub) tenant(ctx context.Context, namespace string) (*tenantHub, error) {
	select {
	case <-a.started:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	a.mu.Lock()
	t, found := a.tenants[namespace]
	if !found {
		t = &tenantHub{ready: make(chan struct{}), namespace: namespace}
		a.tenants[namespace] = t
	}
	a.mu.Unlock()
	if !found {
		t.err = a.open(namespace, t)
		if t.err != nil {
			a.mu.Lock()
			delete(a.tenants, namespace)
			a.mu.Unlock()
		}
		close(t.ready)
	}
	select {
	case <-t.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if t.err != nil {
		return nil, t.err
	}
	if t.loginRefused() {
		a.repush(namespace, t)
	}
	return t, nil
}

// loginRefused: the account's connection is down because the server
// refused its login, as when the resolver lost the account (a wiped
// resolver directory, a restored cluster).
func (t *tenantHub) loginRefused() bool {
	return t.nc != nil && !t.nc.IsConnected() && !t.nc.IsClosed() && errors.Is(t.nc.LastError(), nats.ErrAuthorization)
}

// repushEvery spaces the pushes of an account whose login is refused.
const repushEvery = 5 * time.Second

// repush pushes a connected account again, at most once per repushEvery;
// the connection logs in on its next retry.
func (a *accountHub) repush(namespace string, t *tenantHub) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if time.Since(t.pushed) < repushEvery {
		return
	}
	t.pushed = time.Now()
	log := ctrl.LoggerFrom(a.ctx).WithName("tenancy")
	if err := a.push(namespace); err != nil {
		log.Error(err, "pushing a namespace's account again after its login was refused", "namespace", namespace)
		return
	}
	log.Info("pushed a namespace's account again: the server refused its login", "namespace", namespace)
}

// push signs namespace's account and pushes it, under the manager's
// context: the first caller's reconcile ending must not fail the others
// waiting for the same account.
func (a *accountHub) push(namespace string) error {
	acc, err := a.tenancy.Authority.Account(namespace)
	if err != nil {
		return err
	}
	defer acc.Wipe()
	token, err := a.tenancy.Authority.JWT(acc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(a.ctx, pushTimeout)
	defer cancel()
	if err := tenancy.Push(ctx, a.system, token); err != nil {
		if errors.Is(err, tenancy.ErrPushRefused) {
			return fmt.Errorf("namespace %s's NATS account %s: %w", namespace, acc.Public, err)
		}
		return fmt.Errorf("%w: namespace %s's NATS account %s could not be pushed: %v", hub.ErrUnreachable, namespace, acc.Public, err)
	}
	return nil
}

// open pushes namespace's account and connects into it. The connection
// never gives up on a refused login (nats.go's default closes it at the
// second): the account may not have reached that server yet, or the
// resolver lost it, which tenant repairs with a new push.
func (a *accountHub) open(namespace string, t *tenantHub) error {
	if err := a.push(namespace); err != nil {
		return err
	}
	t.pushed = time.Now()
	acc, err := a.tenancy.Authority.Account(namespace)
	if err != nil {
		return err
	}
	defer acc.Wipe()
	if t.issuer, err = acc.Issuer(a.tenancy.CredentialsTTL); err != nil {
		return err
	}
	userJWT, seed, err := acc.ManagerUser("hubflow-manager")
	if err != nil {
		return err
	}
	nc, err := a.tenancy.Connect(a.ctx, nats.UserJWTAndSeed(userJWT, seed), nats.IgnoreAuthErrorAbort())
	if err != nil {
		return fmt.Errorf("connecting to namespace %s's NATS account: %w", namespace, err)
	}
	if t.client, err = hub.New(nc); err != nil {
		nc.Close()
		return err
	}
	t.nc, t.account = nc, acc.Public
	go a.watch(a.ctx, nc)
	ctrl.LoggerFrom(a.ctx).WithName("tenancy").Info("namespace account ready", "namespace", namespace, "account", acc.Public)
	return nil
}

// accountKey is the public key of namespace's account once its first call
// opened it; empty before.
func (a *accountHub) accountKey(namespace string) string {
	a.mu.Lock()
	t := a.tenants[namespace]
	a.mu.Unlock()
	if t == nil {
		return ""
	}
	select {
	case <-t.ready:
		return t.account
	default:
		return ""
	}
}

// issuer mints namespace's users, in its account.
func (a *accountHub) issuer(ctx context.Context, namespace string) (*credentials.Issuer, error) {
	t, err := a.tenant(ctx, namespace)
	if err != nil {
		return nil, err
	}
	return t.issuer, nil
}

// streamNamespace is the namespace a stream hubflow named belongs to.
func streamNamespace(stream string) (string, error) {
	ns, _, ok := strings.Cut(stream, "_")
	if !ok || len(validation.IsDNS1123Label(ns)) > 0 {
		return "", fmt.Errorf("stream %s belongs to no namespace: with tenancy, every stream lives in its namespace's account", stream)
	}
	return ns, nil
}

func (a *accountHub) route(ctx context.Context, stream string) (*hub.JetStream, error) {
	ns, err := streamNamespace(stream)
	if err != nil {
		return nil, err
	}
	t, err := a.tenant(ctx, ns)
	if err != nil {
		return nil, err
	}
	return t.client, nil
}

func (a *accountHub) Stream(ctx context.Context, name string) (*jetstream.StreamInfo, error) {
	c, err := a.route(ctx, name)
	if err != nil {
		return nil, err
	}
	return c.Stream(ctx, name)
}

func (a *accountHub) CreateStream(ctx context.Context, cfg jetstream.StreamConfig) (*jetstream.StreamInfo, error) {
	c, err := a.route(ctx, cfg.Name)
	if err != nil {
		return nil, err
	}
	return c.CreateStream(ctx, cfg)
}

func (a *accountHub) UpdateStream(ctx context.Context, cfg jetstream.StreamConfig) (*jetstream.StreamInfo, error) {
	c, err := a.route(ctx, cfg.Name)
	if err != nil {
		return nil, err
	}
	return c.UpdateStream(ctx, cfg)
}

func (a *accountHub) DeleteStream(ctx context.Context, name string) error {
	c, err := a.route(ctx, name)
	if err != nil {
		return err
	}
	return c.DeleteStream(ctx, name)
}

func (a *accountHub) Consumer(ctx context.Context, stream, durable string) (*jetstream.ConsumerInfo, error) {
	c, err := a.route(ctx, stream)
	if err != nil {
		return nil, err
	}
	return c.Consumer(ctx, stream, durable)
}

func (a *accountHub) CreateConsumer(ctx context.Context, stream string, cfg jetstream.ConsumerConfig) (*jetstream.ConsumerInfo, error) {
	c, err := a.route(ctx, stream)
	if err != nil {
		return nil, err
	}
	return c.CreateConsumer(ctx, stream, cfg)
}

func (a *accountHub) UpdateConsumer(ctx context.Context, stream string, cfg jetstream.ConsumerConfig) (*jetstream.ConsumerInfo, error) {
	c, err := a.route(ctx, stream)
	if err != nil {
		return nil, err
	}
	return c.UpdateConsumer(ctx, stream, cfg)
}

func (a *accountHub) DeleteConsumer(ctx context.Context, stream, durable string) error {
	c, err := a.route(ctx, stream)
	if err != nil {
		return err
	}
	return c.DeleteConsumer(ctx, stream, durable)
}

func (a *accountHub) ListConsumers(ctx context.Context, stream string) ([]*jetstream.ConsumerInfo, error) {
	c, err := a.route(ctx, stream)
	if err != nil {
		return nil, err
	}
	return c.ListConsumers(ctx, stream)
}

// ListStreams lists the streams of every account connected so far. An
// account not yet connected has not been reconciled by this process: the
// observer then finds its Topics' streams missing and wakes them, which
// connects it. One account that cannot answer does not hide the others.
func (a *accountHub) ListStreams(ctx context.Context) ([]*jetstream.StreamInfo, error) {
	a.mu.Lock()
	var ready []*tenantHub
	for _, t := range a.tenants {
		select {
		case <-t.ready:
			if t.err == nil {
				ready = append(ready, t)
			}
		default:
		}
	}
	a.mu.Unlock()
	var all []*jetstream.StreamInfo
	var errs []error
	for _, t := range ready {
		streams, err := t.client.ListStreams(ctx)
		if err != nil {
			errs = append(errs, fmt.Errorf("account %s: %w", t.account, err))
			continue
		}
		// A stream made out of band under another namespace's prefix would
		// be routed to that namespace's account: leave it out.
		for _, st := range streams {
			if ns, err := streamNamespace(st.Config.Name); err == nil && ns == t.namespace {
				all = append(all, st)
			}
		}
	}
	if len(all) == 0 && len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return all, nil
}
