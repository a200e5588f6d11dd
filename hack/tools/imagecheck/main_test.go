package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fixtureRepo writes a module whose command imports a package from another
// folder, so a build context without that folder cannot compile it: the shape
// of the defect that once broke hubflow's image (pkg/ left out).
func fixtureRepo(t *testing.T, dockerfile, dockerignore string) string {
	t.Helper()
	root := t.TempDir()
	files := map[string]string{
		"go.mod":              "module example.com/fixture\n\ngo 1.26.0\n",
		"go.sum":              "",
		"cmd/app/main.go":     "package main\n\nimport \"example.com/fixture/pkg/lib\"\n\nfunc main() { lib.Hello() }\n",
		"pkg/lib/lib.go":      "package lib\n\nfunc Hello() {}\n",
		"pkg/lib/lib_test.go": "package lib\n\nimport \"testing\"\n\nfunc TestHello(t *testing.T) { Hello() }\n",
		"README.md":           "not copied\n",
		"Dockerfile":          dockerfile,
	}
	if dockerignore != "" {
		files[".dockerignore"] = dockerignore
	}
	for name, content := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

const buildHeader = "FROM golang:1.26 AS builder\nWORKDIR /workspace\nCOPY go.mod go.sum ./\n"

const buildFooter = "RUN CGO_ENABLED=0 GOOS=${TARGETOS:-linux} \\\n    go build -trimpath -ldflags=\"-s -w\" -o app ./cmd/app\n" +
	"FROM gcr.io/distroless/static:nonroot\nCOPY --from=builder /workspace/app /app\nCOPY README.md /README.md\n"

func TestCheckFailsWhenTheBuildStageMissesAPackage(t *testing.T) {
	cases := []struct {
		name         string
		copies       string
		dockerignore string
		wantErr      string // "" when the emulated build must succeed
	}{
		{
			name:    "every package copied",
			copies:  "COPY cmd/ cmd/\nCOPY pkg/ pkg/\n",
			wantErr: "",
		},
		{
			name:    "a COPY line missing",
			copies:  "COPY cmd/ cmd/\n",
			wantErr: "example.com/fixture/pkg/lib",
		},
		{
			name:         "copied but excluded by .dockerignore",
			copies:       "COPY cmd/ cmd/\nCOPY pkg/ pkg/\n",
			dockerignore: "*\n!go.mod\n!go.sum\n!cmd/\n",
			wantErr:      "COPY pkg: nothing in the build context matches",
		},
		{
			name:         "allow-list that lets the package in",
			copies:       "COPY cmd/ cmd/\nCOPY pkg/ pkg/\n",
			dockerignore: "*\n!go.mod\n!go.sum\n!cmd/\n!pkg/\n**/*_test.go\n",
			wantErr:      "",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root := fixtureRepo(t, buildHeader+tc.copies+buildFooter, tc.dockerignore)
			err := check(root, false, io.Discard)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("check failed on a complete build stage: %v", err)
			case tc.wantErr != "" && err == nil:
				t.Fatalf("check passed; want a failure mentioning %q", tc.wantErr)
			case tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr):
				t.Fatalf("check failed with %v; want it to mention %q", err, tc.wantErr)
			}
		})
	}
}

func TestBuildContextHonoursDockerignore(t *testing.T) {
	root := fixtureRepo(t, buildHeader+buildFooter, "*\n!go.mod\n!pkg/\n**/*_test.go\n")
	files, err := buildContext(root)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{
		"go.mod":              true,
		"pkg/lib/lib.go":      true,
		"pkg/lib/lib_test.go": false, // excluded after the re-include
		"cmd/app/main.go":     false,
		"README.md":           false,
	} {
		if files[name] != want {
			t.Errorf("%s in context = %v, want %v (context: %v)", name, files[name], want, files)
		}
	}
}

func TestParseBuildStageReadsTheFirstStageOnly(t *testing.T) {
	stage, err := parseBuildStage(buildHeader + "COPY cmd/ cmd/\n" + buildFooter)
	if err != nil {
		t.Fatal(err)
	}
	if stage.workdir != "/workspace" {
		t.Errorf("workdir = %q, want /workspace", stage.workdir)
	}
	var dests []string
	for _, c := range stage.copies {
		dests = append(dests, c.dest)
	}
	if got, want := strings.Join(dests, " "), "/workspace/ /workspace/cmd/"; got != want {
		t.Errorf("COPY destinations = %q, want %q (the final stage's COPY lines must be ignored)", got, want)
	}
	if got, want := strings.Join(stage.buildArgs, " "), "-trimpath -ldflags=-s -w ./cmd/app"; got != want {
		t.Errorf("go build args = %q, want %q", got, want)
	}
}
