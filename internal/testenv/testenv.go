// Package testenv starts a real kube-apiserver and etcd (controller-runtime's
// envtest) with hubflow's CRDs installed, for every envtest suite in the repo.
package testenv

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	kruntime "k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	hubflowv1alpha1 "github.com/hubflow/hubflow/api/v1alpha1"
)

// KubernetesVersion is the version of the control plane binaries the repo pins.
const KubernetesVersion = "1.37.2"

// Env is a running control plane with hubflow's CRDs installed.
type Env struct {
	Config *rest.Config
	Client client.Client
	Scheme *kruntime.Scheme

	env *envtest.Environment
}

// RepoRoot is the repository's root directory, found from this file's path so
// that it does not depend on the working directory of the test binary.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Start starts etcd and kube-apiserver from KUBEBUILDER_ASSETS, or from
// <repo>/bin/k8s-<version> when it is unset, and installs config/crd/bases.
func Start() (*Env, error) {
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		assets = filepath.Join(RepoRoot(), "bin", "k8s-"+KubernetesVersion)
	}
	for _, bin := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(assets, bin)); err != nil {
			return nil, fmt.Errorf("envtest binary %s not found in %s (run `make envtest` or set KUBEBUILDER_ASSETS): %w", bin, assets, err)
		}
	}

	scheme := kruntime.NewScheme()
	if err := errors.Join(clientgoscheme.AddToScheme(scheme), hubflowv1alpha1.AddToScheme(scheme)); err != nil {
		return nil, fmt.Errorf("building scheme: %w", err)
	}

	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(RepoRoot(), "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: assets,
		Scheme:                scheme,
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("starting envtest: %w", err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, errors.Join(fmt.Errorf("creating client: %w", err), env.Stop())
	}
	return &Env{Config: cfg, Client: c, Scheme: scheme, env: env}, nil
}

// Stop stops kube-apiserver and etcd.
func (e *Env) Stop() error {
	return e.env.Stop()
}

// Kubectl is the pinned kubectl built next to the control plane binaries.
func Kubectl() string {
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		assets = filepath.Join(RepoRoot(), "bin", "k8s-"+KubernetesVersion)
	}
	return filepath.Join(assets, "kubectl")
}

// KubeconfigFile writes an admin kubeconfig into dir and returns its path.
func (e *Env) KubeconfigFile(dir string) (string, error) {
	kubeconfig, err := e.Kubeconfig()
	if err != nil {
		return "", err
	}
	file := filepath.Join(dir, "kubeconfig")
	return file, os.WriteFile(file, kubeconfig, 0o600)
}

// Kubeconfig is an admin kubeconfig for the control plane, for kubectl.
func (e *Env) Kubeconfig() ([]byte, error) {
	user, err := e.env.AddUser(envtest.User{Name: "hubflow-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return nil, fmt.Errorf("adding a kubectl user: %w", err)
	}
	return user.KubeConfig()
}
