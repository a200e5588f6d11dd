package natsconn

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "present")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing")

	tests := []struct {
		name    string
		opts    Options
		wantErr []string // substrings; nil means valid
	}{
		{name: "default URL", opts: Options{URL: DefaultURL}},
		{name: "URL list with bare host", opts: Options{URL: "nats://a:4222, tls://b:4222,c:4222"}},
		{name: "all files present", opts: Options{URL: DefaultURL, CredsFile: file, TLSCAFile: file, TLSCertFile: file, TLSKeyFile: file}},
		{name: "empty URL", opts: Options{}, wantErr: []string{"--nats-url: must not be empty"}},
		{name: "empty entry in list", opts: Options{URL: "nats://a:4222,"}, wantErr: []string{"empty entry"}},
		{name: "unsupported scheme", opts: Options{URL: "http://a:4222"}, wantErr: []string{`unsupported scheme "http"`}},
		{name: "no host", opts: Options{URL: "nats://:4222"}, wantErr: []string{"no host"}},
		{name: "cert without key", opts: Options{URL: DefaultURL, TLSCertFile: file}, wantErr: []string{"set both or neither"}},
		{name: "key without cert", opts: Options{URL: DefaultURL, TLSKeyFile: file}, wantErr: []string{"set both or neither"}},
		{name: "missing creds", opts: Options{URL: DefaultURL, CredsFile: missing}, wantErr: []string{"--nats-creds:", "no such file"}},
		{name: "missing CA", opts: Options{URL: DefaultURL, TLSCAFile: missing}, wantErr: []string{"--nats-tls-ca:"}},
		{name: "directory as key", opts: Options{URL: DefaultURL, TLSCertFile: file, TLSKeyFile: dir}, wantErr: []string{"--nats-tls-key:", "is a directory"}},
		{name: "negative reconnect wait", opts: Options{URL: DefaultURL, ReconnectWait: -1}, wantErr: []string{"--nats-reconnect-wait"}},
		{
			name:    "every problem reported at once",
			opts:    Options{TLSCertFile: missing},
			wantErr: []string{"--nats-url", "set both or neither", "--nats-tls-cert:"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.opts.Validate()
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want an error containing %q", tt.wantErr)
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Validate() = %q, want it to contain %q", err, want)
				}
			}
		})
	}
}

func TestValidateNeverEchoesCredentials(t *testing.T) {
	err := (&Options{URL: "http://alice:s3cret@a:4222,nats://tok3n@:4222"}).Validate()
	if err == nil {
		t.Fatal("Validate() = nil, want errors")
	}
	for _, secret := range []string{"alice", "s3cret", "tok3n"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("Validate() = %q, leaks %q", err, secret)
		}
	}
}

func TestRedactURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"nats://127.0.0.1:4222", "nats://127.0.0.1:4222"},
		{"nats://alice:s3cret@hub:4222", "nats://redacted@hub:4222"},
		{"nats://tok3n@hub:4222", "nats://redacted@hub:4222"},
		{"nats://alice:p@ss@hub:4222", "nats://redacted@hub:4222"},
		{"alice:s3cret@hub:4222", "redacted@hub:4222"},
		{"nats://a:1, tls://u:p@b:2", "nats://a:1,tls://redacted@b:2"},
	}
	for _, tt := range tests {
		if got := RedactURL(tt.in); got != tt.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestWithoutUserInfo(t *testing.T) {
	tests := []struct {
		in, want string
		had      bool
	}{
		{"nats://127.0.0.1:4222", "nats://127.0.0.1:4222", false},
		{"nats://alice:s3cret@hub:4222", "nats://hub:4222", true},
		{"nats://tok3n@hub:4222", "nats://hub:4222", true},
		{"alice:s3cret@hub:4222", "hub:4222", true},
		{"nats://a:1, tls://u:p@b:2", "nats://a:1,tls://b:2", true},
	}
	for _, tt := range tests {
		if got := WithoutUserInfo(tt.in); got != tt.want {
			t.Errorf("WithoutUserInfo(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if got := HasUserInfo(tt.in); got != tt.had {
			t.Errorf("HasUserInfo(%q) = %v, want %v", tt.in, got, tt.had)
		}
	}
	if err := CheckURLs("nats://a:1,http://u:pw@b:2"); err == nil || strings.Contains(err.Error(), "pw") {
		t.Errorf("CheckURLs = %v, want an error that does not echo the password", err)
	}
}
