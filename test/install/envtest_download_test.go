package install

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/hubflow/hubflow/internal/testenv"
)

// The first run takes the official envtest release binaries where they can
// be downloaded. No download site is reachable here, so a local server plays
// the release index and the release, serving the binaries already built:
// the script must verify the archive's sha512 and use it, and fall back to
// building when the hash does not match.
func TestEnvtestReleaseDownload(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("no curl: the download path cannot run on this machine")
	}
	version := testenv.KubernetesVersion
	built := filepath.Join(testenv.RepoRoot(), "bin", "k8s-"+version)
	name := fmt.Sprintf("envtest-v%s-%s-%s.tar.gz", version, runtime.GOOS, runtime.GOARCH)
	archive := envtestArchive(t, built)
	sum := sha512.Sum512(archive)

	for _, tc := range []struct {
		name, hash, want string
	}{
		{"a verified archive is used", hex.EncodeToString(sum[:]), "using the release binaries"},
		{"a mismatching archive is not", strings.Repeat("0", 128), "does not match the sha512"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			index := fmt.Sprintf("releases:\n  v%s:\n    %s:\n      hash: %s\n      selfLink: x\n", version, name, tc.hash)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				switch r.URL.Path {
				case "/index.yaml":
					_, _ = w.Write([]byte(index))
				case "/releases/envtest-v" + version + "/" + name:
					_, _ = w.Write(archive)
				default:
					http.NotFound(w, r)
				}
			}))
			defer srv.Close()
			dest := t.TempDir()
			cmd := exec.Command(filepath.Join(testenv.RepoRoot(), "hack", "build-envtest.sh"), dest)
			cmd.Env = append(os.Environ(), "ENVTEST_INDEX_URL="+srv.URL+"/index.yaml", "ENVTEST_RELEASES_URL="+srv.URL+"/releases")
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("build-envtest.sh: %v\n%s", err, out)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Errorf("the script did not say %q:\n%s", tc.want, out)
			}
			for _, bin := range []string{"kube-apiserver", "kubectl", "etcd"} {
				if _, err := os.Stat(filepath.Join(dest, bin)); err != nil {
					t.Errorf("%s missing after the script: %v", bin, err)
				}
			}
		})
	}
}

// envtestArchive packs the built binaries the way the release does:
// controller-tools/envtest/<binary>.
func envtestArchive(t *testing.T, dir string) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, bin := range []string{"kube-apiserver", "kubectl", "etcd"} {
		data, err := os.ReadFile(filepath.Join(dir, bin))
		if err != nil {
			t.Fatal(err)
		}
		if err := tw.WriteHeader(&tar.Header{Name: "controller-tools/envtest/" + bin, Mode: 0o755, Size: int64(len(data))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
