// Package testhub runs the hubflow manager in-process the way cmd/manager
// does, against a given API server and NATS URL: for the controller suites,
// the benchmarks and the local demo.
package testhub

import (
	"context"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	"github.com/nats-io/nats.go"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/hubflow/hubflow/controllers"
	"github.com/hubflow/hubflow/internal/natsconn"
)

// Manager is a running hubflow manager.
type Manager struct {
	NATS   *nats.Conn
	cancel context.CancelFunc
	done   chan error
}

// Start connects to natsURL without credentials and runs the manager until
// Stop. Bindings get natsURL unless opts.BindingURL says otherwise.
func Start(cfg *rest.Config, scheme *runtime.Scheme, natsURL string, opts controllers.Options) (*Manager, error) {
	return StartWith(cfg, scheme, natsconn.Options{URL: natsURL}, opts)
}

// StartWith is Start with the manager's own connection spelled out, for a
// hub with auth: conn.CredsFile is the manager's user. Unset Name and
// ReconnectWait get test defaults; an unset opts.BindingURL is conn.URL.
func StartWith(cfg *rest.Config, scheme *runtime.Scheme, conn natsconn.Options, opts controllers.Options) (*Manager, error) {
	if conn.Name == "" {
		conn.Name = "hubflow-manager"
	}
	if conn.ReconnectWait == 0 {
		conn.ReconnectWait = 100 * time.Millisecond
	}
	if opts.BindingURL == "" {
		opts.BindingURL = conn.URL
	}
	ctx, cancel := context.WithCancel(context.Background())
	nc, err := conn.Connect(logr.NewContext(ctx, ctrl.Log))
	if err != nil {
		cancel()
		return nil, err
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:  scheme,
		Metrics: metricsserver.Options{BindAddress: "0"},
		Cache:   controllers.CacheOptions(),
		// One process may start managers one after another (the demo's
		// tests): controller names only need to be unique at a time.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err == nil {
		err = controllers.Setup(mgr, nc, opts)
	}
	if err != nil {
		cancel()
		nc.Close()
		return nil, fmt.Errorf("manager: %w", err)
	}
	m := &Manager{NATS: nc, cancel: cancel, done: make(chan error, 1)}
	go func() { m.done <- mgr.Start(ctx) }()
	return m, nil
}

// Stop stops the manager and closes its connection.
func (m *Manager) Stop() error {
	m.cancel()
	err := <-m.done
	m.NATS.Close()
	return err
}
