package hubflow

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// An application that imports the client gets the NATS client's modules and
// nothing of the operator's: no nats-server, no Kubernetes, no
// controller-runtime. The test is what an adopting team does: a new module
// that imports the client's packages, `go mod tidy`, `go list -m all`.
func TestAnApplicationInheritsOnlyNATSModules(t *testing.T) {
	clientModule, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	app := t.TempDir()
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(app, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", "module example.com/app\n\ngo 1.26.0\n\nrequire github.com/hubflow/hubflow/pkg v0.0.0\n\n"+
		"replace github.com/hubflow/hubflow/pkg => "+clientModule+"\n")
	write("main.go", `package main

import (
	"github.com/hubflow/hubflow/pkg/binding"
	"github.com/hubflow/hubflow/pkg/hubflow"
	"github.com/hubflow/hubflow/pkg/pushsig"
)

var _ = hubflow.NewProducer
var _ binding.Binding
var _ = pushsig.Verify

func main() {}
`)
	goCmd := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("go", args...)
		cmd.Dir = app
		cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	goCmd("mod", "tidy")
	goCmd("build", "./...")
	allowed := []string{
		"example.com/app", "github.com/hubflow/hubflow/pkg",
		"github.com/nats-io/nats.go", "github.com/nats-io/nkeys", "github.com/nats-io/nuid",
		"github.com/nats-io/jwt/v2", // required by the client's own tests, never compiled into the app
		"github.com/klauspost/compress",
	}
	var modules []string
	for _, line := range strings.Split(strings.TrimSpace(goCmd("list", "-m", "all")), "\n") {
		path := strings.Fields(line)[0]
		modules = append(modules, path)
		ok := strings.HasPrefix(path, "golang.org/x/") // the Go project's own, through x/crypto
		for _, a := range allowed {
			ok = ok || path == a
		}
		if !ok {
			t.Errorf("the application's module graph has %s (only the NATS client's modules are expected)", line)
		}
	}
	t.Logf("an application importing the client has %d modules: %s", len(modules), strings.Join(modules, ", "))
}
