package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nkeys"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/hubflow/hubflow/internal/natsconn"
	"github.com/hubflow/hubflow/internal/tenancy"
)

func TestParseFlagsDefaults(t *testing.T) {
	s, err := parseFlags(nil)
	if err != nil {
		t.Fatalf("parseFlags() error = %v", err)
	}
	want := settings{
		metricsAddr:             ":8080",
		probeAddr:               ":8081",
		leaderElectionID:        "hubflow.hubflow.io",
		maxConcurrentReconciles: 4,
		resyncInterval:          10 * time.Minute,
		observeInterval:         30 * time.Second,
		kubeQPS:                 100,
		kubeBurst:               200,
		nats: natsconn.Options{
			URL:           natsconn.DefaultURL,
			Name:          "hubflow-manager",
			ReconnectWait: natsconn.DefaultReconnectWait,
		},
		bindingURL:         natsconn.DefaultURL,
		clusterName:        "default",
		deadLetterReplicas: 1,
		credentials:        credentialSettings{ttl: 24 * time.Hour},
		tenancy:            tenancySettings{mode: "shared", limits: tenancy.Unlimited},
	}
	s.zap = want.zap // zap's own defaults are not ours to test
	if !reflect.DeepEqual(s, want) {
		t.Errorf("parseFlags() = %+v\nwant %+v", s, want)
	}
}

func TestParseFlags(t *testing.T) {
	account, err := nkeys.CreateAccount()
	if err != nil {
		t.Fatal(err)
	}
	accountKey, _ := account.PublicKey()
	seed, _ := account.Seed()
	keyFile := filepath.Join(t.TempDir(), "signing.nk")
	if err := os.WriteFile(keyFile, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		args    []string
		check   func(settings) bool
		wantErr string
	}{
		{
			name: "manager.yaml arguments",
			args: []string{"--leader-elect", "--nats-url=nats://nats.nats-system:4222", "--metrics-bind-address=:8443", "--metrics-secure"},
			check: func(s settings) bool {
				return s.leaderElect && s.metricsSecure && s.nats.URL == "nats://nats.nats-system:4222"
			},
		},
		{
			name:  "metrics disabled",
			args:  []string{"--metrics-bind-address=0"},
			check: func(s settings) bool { return s.metricsAddr == "0" },
		},
		{
			name:  "tuning",
			args:  []string{"--max-concurrent-reconciles=8", "--resync-interval=30s"},
			check: func(s settings) bool { return s.maxConcurrentReconciles == 8 && s.resyncInterval == 30*time.Second },
		},
		{name: "zero workers", args: []string{"--max-concurrent-reconciles=0"}, wantErr: "--max-concurrent-reconciles"},
		{name: "zero resync", args: []string{"--resync-interval=0s"}, wantErr: "--resync-interval"},
		{name: "negative observe interval", args: []string{"--observe-interval=-1s"}, wantErr: "--observe-interval"},
		{name: "zero qps", args: []string{"--kube-api-qps=0"}, wantErr: "--kube-api-qps"},
		{name: "NATS options are validated", args: []string{"--nats-tls-cert=/nonexistent"}, wantErr: "set both or neither"},
		{name: "stray argument", args: []string{"extra"}, wantErr: "unexpected arguments"},
		{
			name: "binding URL defaults to the manager's, without its user",
			args: []string{"--nats-url=nats://manager:pw@nats.nats-system:4222"},
			check: func(s settings) bool {
				return s.bindingURL == "nats://nats.nats-system:4222"
			},
		},
		{
			name:  "binding URL for workloads",
			args:  []string{"--binding-nats-url=nats://hub.example:4222,nats://hub2.example:4222"},
			check: func(s settings) bool { return s.bindingURL == "nats://hub.example:4222,nats://hub2.example:4222" },
		},
		{name: "binding URL with a password", args: []string{"--binding-nats-url=nats://u:pw@hub:4222"}, wantErr: "must not embed a user"},
		{name: "bad binding URL", args: []string{"--binding-nats-url=http://hub:4222"}, wantErr: "--binding-nats-url"},
		{
			name: "operator mode",
			args: []string{"--nats-account-signing-key-file=" + keyFile, "--nats-account=" + accountKey, "--credentials-ttl=1h"},
			check: func(s settings) bool {
				return s.credentials == credentialSettings{signingKeyFile: keyFile, account: accountKey, ttl: time.Hour}
			},
		},
		{name: "key without account", args: []string{"--nats-account-signing-key-file=" + keyFile}, wantErr: "set both or neither"},
		{name: "account without key", args: []string{"--nats-account=" + accountKey}, wantErr: "set both or neither"},
		{name: "missing key file", args: []string{"--nats-account-signing-key-file=/nonexistent", "--nats-account=" + accountKey}, wantErr: "--nats-account-signing-key-file"},
		{name: "not an account key", args: []string{"--nats-account-signing-key-file=" + keyFile, "--nats-account=UABC"}, wantErr: "not an account public key"},
		{name: "seed given as account", args: []string{"--nats-account-signing-key-file=" + keyFile, "--nats-account=" + string(seed)}, wantErr: "looks like a seed"},
		{name: "TTL too short", args: []string{"--credentials-ttl=1m"}, wantErr: "--credentials-ttl"},
		{
			name:  "watched namespaces",
			args:  []string{"--watch-namespaces=shop, billing"},
			check: func(s settings) bool { return reflect.DeepEqual(s.watchNamespaces, []string{"shop", "billing"}) },
		},
		{name: "bad namespace", args: []string{"--watch-namespaces=shop,Bad_NS"}, wantErr: "not a namespace name"},
		{
			name:  "cluster name",
			args:  []string{"--cluster-name=eu-west-1"},
			check: func(s settings) bool { return s.clusterName == "eu-west-1" },
		},
		{name: "bad cluster name", args: []string{"--cluster-name=EU/west"}, wantErr: "--cluster-name"},
		{name: "unknown flag", args: []string{"--no-such-flag"}, wantErr: "not defined"},
		{
			name: "account per namespace",
			args: []string{"--tenancy=namespace", "--nats-operator-signing-key-file=" + keyFile, "--tenant-root-secret-file=" + keyFile, "--tenant-max-streams=20"},
			check: func(s settings) bool {
				return s.tenancy.mode == "namespace" && s.tenancy.limits.Streams == 20 && s.tenancy.limits.DiskStorage == -1
			},
		},
		{name: "tenancy without keys", args: []string{"--tenancy=namespace"}, wantErr: "--nats-operator-signing-key-file: required"},
		{name: "tenancy without root", args: []string{"--tenancy=namespace", "--nats-operator-signing-key-file=" + keyFile}, wantErr: "--tenant-root-secret-file: required"},
		{name: "tenancy with one account's key", args: []string{"--tenancy=namespace", "--nats-operator-signing-key-file=" + keyFile, "--tenant-root-secret-file=" + keyFile, "--nats-account-signing-key-file=" + keyFile, "--nats-account=" + accountKey}, wantErr: "drop --nats-account-signing-key-file"},
		{name: "tenancy keys on a shared hub", args: []string{"--nats-operator-signing-key-file=" + keyFile}, wantErr: "only with --tenancy=namespace"},
		{name: "unknown tenancy", args: []string{"--tenancy=team"}, wantErr: "--tenancy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := parseFlags(tt.args)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseFlags(%q) error = %v, want it to contain %q", tt.args, err, tt.wantErr)
				}
				for _, secret := range []string{string(seed), "pw"} {
					if strings.Contains(err.Error(), secret) {
						t.Errorf("the error echoes a secret: %v", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("parseFlags(%q) error = %v", tt.args, err)
			}
			if !tt.check(s) {
				t.Errorf("parseFlags(%q) = %+v", tt.args, s)
			}
		})
	}
}

// TestKubeconfigFlag: the manager takes --kubeconfig like kubectl does, and
// the config it loads is that file's.
func TestKubeconfigFlag(t *testing.T) {
	file := filepath.Join(t.TempDir(), "kubeconfig")
	const cfg = `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://api.example:6443"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := parseFlags([]string{"--kubeconfig=" + file}); err != nil {
		t.Fatalf("--kubeconfig refused: %v", err)
	}
	rc, err := ctrl.GetConfig()
	if err != nil {
		t.Fatal(err)
	}
	if rc.Host != "https://api.example:6443" {
		t.Errorf("loaded config for %s, want the --kubeconfig file's https://api.example:6443", rc.Host)
	}
}
