package main

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hubflow/hubflow/internal/natsconn"
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
	}
	s.zap = want.zap // zap's own defaults are not ours to test
	if !reflect.DeepEqual(s, want) {
		t.Errorf("parseFlags() = %+v\nwant %+v", s, want)
	}
}

func TestParseFlags(t *testing.T) {
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
		{name: "unknown flag", args: []string{"--no-such-flag"}, wantErr: "not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := parseFlags(tt.args)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseFlags(%q) error = %v, want it to contain %q", tt.args, err, tt.wantErr)
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
