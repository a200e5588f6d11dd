// Command gateway is hubflow's HTTP gateway: callers that cannot run a NATS
// client publish to Topics over HTTP with their Producer's semantic
// (internal/gateway). It is stateless: run as many replicas as the load
// needs behind one Service.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
	"github.com/hubflow/hubflow/internal/gateway"
	"github.com/hubflow/hubflow/internal/natsconn"
)

type settings struct {
	nats           natsconn.Options
	listen         string
	metrics        string
	publishTimeout time.Duration
	tokenCache     time.Duration
	drainDelay     time.Duration
	drainTimeout   time.Duration
	zap            zap.Options
}

func parse(args []string) (settings, error) {
	var s settings
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	s.nats.BindFlags(fs)
	fs.StringVar(&s.listen, "listen", ":8080", "Address the HTTP API listens on (POST /v1/namespaces/{ns}/topics/{topic}/messages, /readyz, /healthz).")
	fs.StringVar(&s.metrics, "metrics-bind-address", ":8081", "Address /metrics is served on.")
	fs.DurationVar(&s.publishTimeout, "publish-timeout", 5*time.Second, "How long a publish waits for the stream's acknowledgement before answering 503 (outcome unknown).")
	fs.DurationVar(&s.tokenCache, "token-cache", 30*time.Second, "How long a TokenReview answer is reused for the same token; a revoked token is refused within it.")
	fs.DurationVar(&s.drainDelay, "drain-delay", 5*time.Second, "On SIGTERM, how long /readyz fails before the server stops taking connections, so load balancers move away first.")
	fs.DurationVar(&s.drainTimeout, "drain-timeout", 30*time.Second, "On SIGTERM, how long requests in flight have to finish.")
	s.zap.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		return s, err
	}
	if s.nats.Name == "hubflow-manager" {
		s.nats.Name = "hubflow-gateway"
	}
	return s, nil
}

func main() {
	s, err := parse(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&s.zap)))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := run(ctx, s, ctrl.Log.WithName("gateway")); err != nil {
		ctrl.Log.Error(err, "gateway stopped")
		os.Exit(1)
	}
}

func run(ctx context.Context, s settings, log logr.Logger) error {
	scheme := kruntime.NewScheme()
	if err := errors.Join(clientgoscheme.AddToScheme(scheme), hubflowv1.AddToScheme(scheme)); err != nil {
		return err
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return err
	}
	objects, err := gateway.StartCache(ctx, cfg, scheme)
	if err != nil {
		return err
	}
	direct, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return err
	}
	nc, err := s.nats.Connect(logr.NewContext(ctx, log))
	if err != nil {
		return err
	}
	registry := prometheus.NewRegistry()
	registry.MustRegister(prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	g, err := gateway.New(gateway.Config{Reader: objects, NATS: nc, PublishTimeout: s.publishTimeout, Registry: registry,
		Auth: &gateway.TokenReviewer{Client: direct, CacheFor: s.tokenCache}})
	if err != nil {
		nc.Close()
		return err
	}
	// Push delivery to the endpoints Consumers declare (spec.push) stops
	// with the API: its requests in flight are settled first.
	pushCtx, stopPush := context.WithCancel(context.Background())
	pushed := make(chan error, 1)
	pusher := &gateway.Pusher{Reader: objects, Secrets: direct, NATS: nc, Log: log.WithName("push"), Registry: registry}
	go func() { pushed <- pusher.Run(pushCtx) }()
	api := &http.Server{Addr: s.listen, Handler: g, ReadHeaderTimeout: 10 * time.Second}
	metrics := &http.Server{Addr: s.metrics, Handler: promhttp.HandlerFor(registry, promhttp.HandlerOpts{}), ReadHeaderTimeout: 10 * time.Second}
	errs := make(chan error, 2)
	for _, srv := range []*http.Server{api, metrics} {
		go func() {
			if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
				errs <- err
			}
		}()
	}
	log.Info("gateway serving", "listen", s.listen, "nats", natsconn.RedactURL(s.nats.URL))
	select {
	case err := <-errs:
		stopPush()
		nc.Close()
		return err
	case <-ctx.Done():
	}
	// Drain: readiness fails first, then no new connections, then the
	// requests in flight finish (each answers only after its publish is
	// settled), then the NATS connection flushes what it holds.
	g.Drain()
	log.Info("draining", "delay", s.drainDelay)
	time.Sleep(s.drainDelay)
	sctx, cancel := context.WithTimeout(context.Background(), s.drainTimeout)
	defer cancel()
	err = errors.Join(api.Shutdown(sctx), metrics.Shutdown(sctx))
	stopPush()
	err = errors.Join(err, <-pushed)
	return errors.Join(err, nc.Drain())
}
