// Command manager runs the hubflow operator: it reconciles Topic, Producer and Consumer
// objects into NATS JetStream streams, durable consumers and bindings.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"os"
	kubeconfig "sigs.k8s.io/controller-runtime/pkg/client/config"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	hubflowv1alpha1 "github.com/hubflow/hubflow/api/v1alpha1"
	"github.com/hubflow/hubflow/controllers"
	"github.com/hubflow/hubflow/internal/credentials"
	"github.com/hubflow/hubflow/internal/natsconn"
	"github.com/hubflow/hubflow/internal/tenancy"
)

// settings is everything the command line decides.
type settings struct {
	metricsAddr             string
	metricsSecure           bool
	probeAddr               string
	leaderElect             bool
	leaderElectionID        string
	maxConcurrentReconciles int
	// resyncInterval is how often a reconciled object is looked at again: JetStream sends
	// no watch events, so drift on the server is only found by polling.
	resyncInterval time.Duration
	// observeInterval is how often consumer lag is read from JetStream.
	observeInterval time.Duration
	// watchNamespaces limits the manager to these namespaces; empty means all.
	watchNamespaces []string
	// kubeQPS and kubeBurst bound the manager's requests to the API server.
	kubeQPS   float64
	kubeBurst int
	nats      natsconn.Options
	// bindingURL is the NATS URL written into bindings: the one workloads
	// dial. It defaults to --nats-url without its user information.
	bindingURL string
	// clusterName goes into the owner metadata of every stream and durable.
	clusterName        string
	windowHoldGrace    time.Duration
	deadLetterReplicas int
	credentials        credentialSettings
	tenancy            tenancySettings
	zap                zap.Options
	// oneOfManyRuns lets a test run the manager twice in one process
	// (controller names must otherwise be unique per process). No flag.
	oneOfManyRuns bool
}

// tenancySettings say whether each namespace gets a NATS account of its own.
type tenancySettings struct {
	mode string // "shared" or "namespace"
	// operatorSigningKeyFile and rootSecretFile are read once, never logged.
	operatorSigningKeyFile string
	rootSecretFile         string
	limits                 tenancy.Limits
}

const (
	tenancyShared    = "shared"
	tenancyNamespace = "namespace"
)

// credentialSettings say how Producers' and Consumers' NATS users are minted.
type credentialSettings struct {
	// signingKeyFile holds an account signing key's seed; empty for a hub
	// without auth. It is read once at start-up and never logged.
	signingKeyFile string
	// account is the public key of the account the signing key signs for.
	account string
	ttl     time.Duration
}

func main() {
	s, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&s.zap)))
	log := ctrl.Log.WithName("setup")
	ctx := ctrl.SetupSignalHandler()
	restConfig, err := ctrl.GetConfig()
	if err != nil {
		log.Error(err, "loading kubeconfig")
		os.Exit(1)
	}
	if err := run(ctx, restConfig, s); err != nil {
		log.Error(err, "manager stopped")
		os.Exit(1)
	}
}

func parseFlags(args []string) (settings, error) {
	var s settings
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	fs.StringVar(&s.metricsAddr, "metrics-bind-address", ":8080", `Address the metrics endpoint binds to; "0" disables it.`)
	fs.BoolVar(&s.metricsSecure, "metrics-secure", false, "Serve metrics over HTTPS, allowing only callers the API server authorizes for GET /metrics.")
	fs.StringVar(&s.probeAddr, "health-probe-bind-address", ":8081", "Address the /healthz and /readyz probes bind to.")
	fs.BoolVar(&s.leaderElect, "leader-elect", false, "Elect a leader so only one replica reconciles at a time.")
	fs.StringVar(&s.leaderElectionID, "leader-election-id", "hubflow.hubflow.io", "Name of the Lease used for leader election.")
	fs.IntVar(&s.maxConcurrentReconciles, "max-concurrent-reconciles", 4, "Objects of one kind reconciled in parallel.")
	fs.DurationVar(&s.resyncInterval, "resync-interval", 10*time.Minute, "Backstop: how often every object is compared with the NATS server even when no advisory reported a change.")
	fs.DurationVar(&s.observeInterval, "observe-interval", 30*time.Second, `How often the hub is listed to collect consumer lag and spot drift (one request per 256 streams, plus one per stream whose messages moved); "0" disables it.`)
	fs.Float64Var(&s.kubeQPS, "kube-api-qps", 100, "Requests per second the manager may send to the Kubernetes API server.")
	fs.IntVar(&s.kubeBurst, "kube-api-burst", 200, "Burst of requests the manager may send to the Kubernetes API server.")
	fs.Func("watch-namespaces", "Comma-separated namespaces the manager watches and writes to, so its ClusterRole can be bound per namespace with RoleBindings; all namespaces when unset.", func(v string) error {
		for _, ns := range strings.Split(v, ",") {
			ns = strings.TrimSpace(ns)
			if msgs := validation.IsDNS1123Label(ns); len(msgs) > 0 {
				return fmt.Errorf("%q is not a namespace name: %s", ns, strings.Join(msgs, "; "))
			}
			s.watchNamespaces = append(s.watchNamespaces, ns)
		}
		return nil
	})
	s.nats.BindFlags(fs)
	// --kubeconfig, as every Kubernetes tool has it; without it the manager
	// uses $KUBECONFIG, the in-cluster config, then ~/.kube/config.
	kubeconfig.RegisterFlags(fs)
	fs.StringVar(&s.bindingURL, "binding-nats-url", "", "NATS URL written into every binding, the one workloads dial; a comma-separated list is allowed. Defaults to --nats-url without its user information.")
	fs.StringVar(&s.credentials.signingKeyFile, "nats-account-signing-key-file", "", "File holding the seed of an account signing key (NATS operator mode). With it, every Producer and Consumer gets its own short-lived NATS user; without it, bindings carry no credentials (a hub without auth). Read once; never logged.")
	fs.StringVar(&s.credentials.account, "nats-account", "", "Public key (A...) of the account the signing key belongs to; required with --nats-account-signing-key-file.")
	fs.DurationVar(&s.credentials.ttl, "credentials-ttl", 24*time.Hour, "Lifetime of each Producer's and Consumer's NATS user. They are renewed when a third of it is left; the server disconnects a client whose user expired, so this also bounds how long a deleted or narrowed Producer or Consumer keeps access.")
	fs.DurationVar(&s.windowHoldGrace, "window-hold-grace", 0, "How long an ExactlyOnce Topic keeps a duplicate window held for a deleted Producer's retry horizon, since its workloads may go on retrying with the binding they have. Default: --credentials-ttl when credentials are minted (they run out by then), else 24h.")
	fs.IntVar(&s.deadLetterReplicas, "dead-letter-replicas", 1, "Replicas of the stream that captures the server's dead-letter announcements (created when a Consumer first declares spec.deadLetter). Give it the replicas of the Topics whose dead letters matter: on a 3-node hub, 3.")
	fs.StringVar(&s.clusterName, "cluster-name", controllers.DefaultClusterName, "Name of this Kubernetes cluster, recorded as the owner of every stream and durable hubflow creates. Give each cluster that shares a NATS account its own name: a cluster never changes or deletes another's objects. Changing it later makes the objects already created look owned elsewhere.")
	fs.StringVar(&s.tenancy.mode, "tenancy", tenancyShared, `"shared": every namespace's flows share the one NATS account of the manager's connection. "namespace": each namespace gets a NATS account of its own, which the manager creates and pushes to the account resolver; --nats-creds is then a system-account user, and --nats-operator-signing-key-file and --tenant-root-secret-file are required (docs/tenancy.md).`)
	fs.StringVar(&s.tenancy.operatorSigningKeyFile, "nats-operator-signing-key-file", "", "With --tenancy=namespace: file holding the seed of an operator signing key, which signs each namespace's account. Read once; never logged.")
	fs.StringVar(&s.tenancy.rootSecretFile, "tenant-root-secret-file", "", "With --tenancy=namespace: file holding at least 32 random bytes from which every namespace's account keys are derived. Keep it: another secret means other accounts, and the streams of the old ones out of reach. Read once; never logged.")
	s.tenancy.limits = tenancy.Unlimited
	fs.Int64Var(&s.tenancy.limits.DiskStorage, "tenant-max-file-storage", -1, "With --tenancy=namespace: bytes of file storage each namespace's account may use; -1 is unlimited.")
	fs.Int64Var(&s.tenancy.limits.MemoryStorage, "tenant-max-memory-storage", -1, "With --tenancy=namespace: bytes of memory storage each namespace's account may use; -1 is unlimited.")
	fs.Int64Var(&s.tenancy.limits.Streams, "tenant-max-streams", -1, "With --tenancy=namespace: streams (Topics) each namespace's account may hold; -1 is unlimited.")
	fs.Int64Var(&s.tenancy.limits.Consumers, "tenant-max-consumers", -1, "With --tenancy=namespace: durables (Consumers) each namespace's account may hold; -1 is unlimited.")
	s.zap.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		return s, err
	}
	if fs.NArg() > 0 {
		return s, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	var errs []error
	if s.maxConcurrentReconciles < 1 {
		errs = append(errs, fmt.Errorf("--max-concurrent-reconciles: must be at least 1, got %d", s.maxConcurrentReconciles))
	}
	if s.resyncInterval <= 0 {
		errs = append(errs, fmt.Errorf("--resync-interval: must be positive, got %s", s.resyncInterval))
	}
	if s.observeInterval < 0 {
		errs = append(errs, fmt.Errorf("--observe-interval: must not be negative, got %s", s.observeInterval))
	}
	if s.kubeQPS <= 0 || s.kubeBurst <= 0 {
		errs = append(errs, fmt.Errorf("--kube-api-qps and --kube-api-burst: must be positive, got %v and %d", s.kubeQPS, s.kubeBurst))
	}
	if msgs := validation.IsDNS1123Label(s.clusterName); len(msgs) > 0 {
		errs = append(errs, fmt.Errorf("--cluster-name: %q: %s", s.clusterName, strings.Join(msgs, "; ")))
	}
	errs = append(errs, s.nats.Validate())
	if s.bindingURL == "" {
		s.bindingURL = natsconn.WithoutUserInfo(s.nats.URL)
	} else if err := natsconn.CheckURLs(s.bindingURL); err != nil {
		errs = append(errs, fmt.Errorf("--binding-nats-url: %w", err))
	} else if natsconn.HasUserInfo(s.bindingURL) {
		errs = append(errs, errors.New("--binding-nats-url: must not embed a user, password or token: every binding would carry it; workloads authenticate with their own credentials"))
	}
	errs = append(errs, s.credentials.validate(), s.tenancy.validate(s.credentials))
	return s, errors.Join(errs...)
}

// validate never echoes --nats-account: a seed pasted there by mistake must
// not reach a log.
func (c credentialSettings) validate() error {
	var errs []error
	switch {
	case (c.signingKeyFile == "") != (c.account == ""):
		errs = append(errs, errors.New("--nats-account-signing-key-file and --nats-account: set both or neither"))
	case c.account != "" && strings.HasPrefix(c.account, "S"):
		errs = append(errs, errors.New("--nats-account: this looks like a seed; give the account's public key (it starts with A), and keep the seed in the key file"))
	case c.account != "" && !nkeys.IsValidPublicAccountKey(c.account):
		errs = append(errs, errors.New("--nats-account: not an account public key (56 characters starting with A)"))
	}
	if c.signingKeyFile != "" {
		if info, err := os.Stat(c.signingKeyFile); err != nil {
			errs = append(errs, fmt.Errorf("--nats-account-signing-key-file: %w", err))
		} else if info.IsDir() {
			errs = append(errs, fmt.Errorf("--nats-account-signing-key-file: %s is a directory, want a file", c.signingKeyFile))
		}
	}
	if c.ttl < credentials.MinTTL {
		errs = append(errs, fmt.Errorf("--credentials-ttl: must be at least %s (credentials are renewed when a third is left, and a renewed Secret takes up to a minute or two to reach a pod), got %s", credentials.MinTTL, c.ttl))
	}
	return errors.Join(errs...)
}

func (t tenancySettings) validate(c credentialSettings) error {
	switch t.mode {
	case tenancyShared:
		if t.operatorSigningKeyFile != "" || t.rootSecretFile != "" {
			return errors.New("--nats-operator-signing-key-file and --tenant-root-secret-file: only with --tenancy=namespace")
		}
		return nil
	case tenancyNamespace:
	default:
		return fmt.Errorf("--tenancy: want %q or %q, got %q", tenancyShared, tenancyNamespace, t.mode)
	}
	var errs []error
	if c.signingKeyFile != "" {
		errs = append(errs, errors.New("--tenancy=namespace: drop --nats-account-signing-key-file and --nats-account; each namespace's account signs its own users"))
	}
	for flag, file := range map[string]string{"--nats-operator-signing-key-file": t.operatorSigningKeyFile, "--tenant-root-secret-file": t.rootSecretFile} {
		if file == "" {
			errs = append(errs, fmt.Errorf("%s: required with --tenancy=namespace", flag))
		} else if info, err := os.Stat(file); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", flag, err))
		} else if info.IsDir() {
			errs = append(errs, fmt.Errorf("%s: %s is a directory, want a file", flag, file))
		}
	}
	return errors.Join(errs...)
}

// run sets the manager up, connects to NATS and blocks until ctx is canceled.
func run(ctx context.Context, restConfig *rest.Config, s settings) error {
	log := ctrl.Log.WithName("setup")
	restConfig = rest.CopyConfig(restConfig)
	restConfig.QPS, restConfig.Burst = float32(s.kubeQPS), s.kubeBurst

	scheme := runtime.NewScheme()
	if err := errors.Join(clientgoscheme.AddToScheme(scheme), hubflowv1alpha1.AddToScheme(scheme)); err != nil {
		return fmt.Errorf("building scheme: %w", err)
	}

	metrics := metricsserver.Options{BindAddress: s.metricsAddr, SecureServing: s.metricsSecure}
	if s.metricsSecure {
		metrics.FilterProvider = filters.WithAuthenticationAndAuthorization
		// HTTP/1.1 only: HTTP/2 stream resets (CVE-2023-44487, CVE-2023-39325) are a cheap
		// denial of service, and a metrics scrape gains nothing from HTTP/2.
		metrics.TLSOpts = []func(*tls.Config){func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} }}
	}
	var issuer *credentials.Issuer
	if s.credentials.signingKeyFile != "" {
		var err error
		if issuer, err = credentials.LoadIssuer(s.credentials.signingKeyFile, s.credentials.account, s.credentials.ttl); err != nil {
			return err
		}
		log.Info("issuing a NATS user to every Producer and Consumer", "account", issuer.Account(),
			"signingKey", issuer.SigningKey(), "ttl", issuer.TTL())
	} else {
		log.Info("no account signing key: bindings carry no NATS credentials, as for a hub without auth")
	}

	var tenants *controllers.Tenancy
	if s.tenancy.mode == tenancyNamespace {
		authority, err := tenancy.LoadAuthority(s.tenancy.operatorSigningKeyFile, s.tenancy.rootSecretFile, s.tenancy.limits)
		if err != nil {
			return err
		}
		tenantConn := s.nats
		tenantConn.CredsFile = "" // the system user's; each account's user is minted
		tenants = &controllers.Tenancy{
			Authority:      authority,
			CredentialsTTL: s.credentials.ttl,
			Connect: func(ctx context.Context, opts ...nats.Option) (*nats.Conn, error) {
				return tenantConn.Connect(logr.NewContext(ctx, ctrl.Log), opts...)
			},
		}
		log.Info("one NATS account per namespace", "operatorSigningKey", authority.OperatorSigningKey(), "ttl", s.credentials.ttl)
	}

	mgr, err := ctrl.NewManager(restConfig, ctrl.Options{
		Scheme:                        scheme,
		Cache:                         controllers.CacheOptions(s.watchNamespaces...),
		Metrics:                       metrics,
		HealthProbeBindAddress:        s.probeAddr,
		LeaderElection:                s.leaderElect,
		LeaderElectionID:              s.leaderElectionID,
		LeaderElectionReleaseOnCancel: true, // the process exits right after the manager stops
		Controller:                    config.Controller{MaxConcurrentReconciles: s.maxConcurrentReconciles, SkipNameValidation: &s.oneOfManyRuns},
	})
	if err != nil {
		return fmt.Errorf("creating manager: %w", err)
	}

	// One connection for the manager's whole life; it retries in the background while
	// the hub is unreachable, and /readyz reports its state.
	nc, err := s.nats.Connect(logr.NewContext(ctx, ctrl.Log))
	if err != nil {
		return err
	}
	defer nc.Close()

	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return fmt.Errorf("adding healthz check: %w", err)
	}
	if err := mgr.AddReadyzCheck("nats", natsconn.ReadyCheck(nc)); err != nil {
		return fmt.Errorf("adding readyz check: %w", err)
	}
	if err := setupReconcilers(mgr, nc, s, issuer, tenants); err != nil {
		return err
	}

	log.Info("starting manager", "nats", natsconn.RedactURL(s.nats.URL), "bindingURL", s.bindingURL, "cluster", s.clusterName,
		"watchNamespaces", s.watchNamespaces,
		"leaderElection", s.leaderElect, "maxConcurrentReconciles", s.maxConcurrentReconciles,
		"resyncInterval", s.resyncInterval)
	return mgr.Start(ctx)
}

// setupReconcilers registers the Topic, Producer and Consumer reconcilers,
// the advisory watch and the lag collector with mgr, all sharing nc.
// issuer is nil for a hub without auth.
func setupReconcilers(mgr ctrl.Manager, nc *nats.Conn, s settings, issuer *credentials.Issuer, tenants *controllers.Tenancy) error {
	return controllers.Setup(mgr, nc, controllers.Options{
		ResyncInterval:          s.resyncInterval,
		ObserveInterval:         s.observeInterval,
		MaxConcurrentReconciles: s.maxConcurrentReconciles,
		Credentials:             issuer,
		BindingURL:              s.bindingURL,
		ClusterName:             s.clusterName,
		WindowHoldGrace:         s.windowHoldGrace,
		DeadLetterReplicas:      s.deadLetterReplicas,
		Tenancy:                 tenants,
	})
}
