// Command imagecheck compiles the manager from exactly the files a `docker build`
// of the repository would give the Dockerfile's build stage: the build context
// that .dockerignore lets through, copied where the stage's COPY lines put it.
// No Docker engine runs where hubflow is built and tested, so without this a
// Dockerfile or .dockerignore that leaves out a package breaks the image unseen.
//
// Usage: go -C hack/tools/imagecheck run . -root ../../..
//
// What it emulates: .dockerignore with Docker's own matcher (last match wins,
// "!" re-includes, a directory pattern covers everything under it); the first
// stage's WORKDIR and its COPY instructions without --from; the `go build` of
// its RUN line, run with the same package arguments and CGO_ENABLED=0. What it
// does not: other RUN steps, ARG expansion, multi-platform builds.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

func main() {
	root := flag.String("root", ".", "the repository root: the build context and its Dockerfile")
	keep := flag.Bool("keep", false, "keep the emulated build folder and print its path")
	flag.Parse()
	if err := check(*root, *keep, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "imagecheck:", err)
		os.Exit(1)
	}
}

// check builds root's Dockerfile's Go binary from its emulated build stage.
func check(root string, keep bool, out io.Writer) error {
	dockerfile, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		return err
	}
	stage, err := parseBuildStage(string(dockerfile))
	if err != nil {
		return err
	}
	context, err := buildContext(root)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "imagecheck-")
	if err != nil {
		return err
	}
	if keep {
		fmt.Fprintln(out, "emulated build stage kept in", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	copied := 0
	for _, c := range stage.copies {
		n, err := c.apply(root, context, dir)
		if err != nil {
			return err
		}
		copied += n
	}
	fmt.Fprintf(out, "build context: %d files after .dockerignore; %d copied by the build stage's COPY lines\n", len(context), copied)

	args := append([]string{"build", "-o", filepath.Join(dir, "out")}, stage.buildArgs...)
	cmd := exec.Command("go", args...)
	cmd.Dir = filepath.Join(dir, filepath.FromSlash(stage.workdir))
	// The image builds with cgo off and from go.mod/go.sum as copied; a go.work
	// outside the context must not help it.
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off", "GOFLAGS=-mod=readonly")
	output, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go %s fails on the files the Dockerfile lets in (fix the COPY lines or .dockerignore):\n%s", strings.Join(stage.buildArgs, " "), output)
	}
	fmt.Fprintf(out, "go build %s: ok from the emulated build stage\n", strings.Join(stage.buildArgs, " "))
	return nil
}

// buildContext lists the files (slash-separated, relative to root) that Docker
// would send as the build context.
func buildContext(root string) (map[string]bool, error) {
	var patterns []string
	f, err := os.Open(filepath.Join(root, ".dockerignore"))
	switch {
	case err == nil:
		patterns, err = ignorefile.ReadAll(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf(".dockerignore: %w", err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return nil, err
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		return nil, fmt.Errorf(".dockerignore: %w", err)
	}
	files := map[string]bool{}
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() && rel == ".git" {
			return filepath.SkipDir
		}
		if !d.Type().IsRegular() {
			return nil // directories are walked; symlinks (bin/) are not sources
		}
		excluded, err := pm.MatchesOrParentMatches(rel)
		if err != nil {
			return err
		}
		if !excluded {
			files[rel] = true
		}
		return nil
	})
	return files, err
}

// buildStage is what imagecheck reads of the Dockerfile's first stage.
type buildStage struct {
	workdir   string // absolute, slash-separated
	copies    []copyInstruction
	buildArgs []string // the arguments of `go build` after its flags' -o
}

type copyInstruction struct {
	sources []string
	dest    string // absolute inside the stage
}

// parseBuildStage reads the first stage: WORKDIR, COPY (not --from) and the
// RUN line that calls `go build`.
func parseBuildStage(dockerfile string) (buildStage, error) {
	stage := buildStage{workdir: "/"}
	stages := 0
	for _, line := range instructions(dockerfile) {
		fields := splitWords(line)
		if len(fields) == 0 {
			continue
		}
		switch strings.ToUpper(fields[0]) {
		case "FROM":
			stages++
		case "WORKDIR":
			if stages == 1 && len(fields) == 2 {
				stage.workdir = path.Join(stage.workdir, fields[1])
			}
		case "COPY", "ADD":
			if stages != 1 {
				continue
			}
			args := fields[1:]
			fromStage := false
			for len(args) > 0 && strings.HasPrefix(args[0], "--") {
				fromStage = fromStage || strings.HasPrefix(args[0], "--from")
				args = args[1:]
			}
			if fromStage || len(args) < 2 {
				continue
			}
			stage.copies = append(stage.copies, copyInstruction{
				sources: args[:len(args)-1],
				dest:    path.Join(stage.workdir, args[len(args)-1]) + trailingSlash(args[len(args)-1]),
			})
		case "RUN":
			if stages == 1 && stage.buildArgs == nil {
				stage.buildArgs = goBuildArgs(fields[1:])
			}
		}
	}
	if stages == 0 || len(stage.copies) == 0 || len(stage.buildArgs) == 0 {
		return stage, errors.New("Dockerfile: no build stage with COPY lines and a `go build` RUN line found")
	}
	return stage, nil
}

func trailingSlash(s string) string {
	if strings.HasSuffix(s, "/") {
		return "/"
	}
	return ""
}

// instructions joins continuation lines and drops comments and blank lines.
func instructions(dockerfile string) []string {
	var out []string
	var cur strings.Builder
	for _, line := range strings.Split(dockerfile, "\n") {
		trimmed := strings.TrimSpace(line)
		if cur.Len() == 0 && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if strings.HasSuffix(trimmed, "\\") {
			cur.WriteString(strings.TrimSuffix(trimmed, "\\") + " ")
			continue
		}
		cur.WriteString(trimmed)
		out = append(out, cur.String())
		cur.Reset()
	}
	if cur.Len() > 0 {
		out = append(out, cur.String())
	}
	return out
}

// splitWords splits a shell-like line on blanks, keeping double-quoted parts
// together (as in -ldflags="-s -w").
func splitWords(line string) []string {
	var words []string
	var cur strings.Builder
	quoted := false
	for _, r := range line {
		switch {
		case r == '"':
			quoted = !quoted
		case (r == ' ' || r == '\t') && !quoted:
			if cur.Len() > 0 {
				words = append(words, cur.String())
				cur.Reset()
			}
		default:
			cur.WriteRune(r)
		}
	}
	if cur.Len() > 0 {
		words = append(words, cur.String())
	}
	return words
}

// goBuildArgs returns the arguments of the `go build` in a RUN line, without
// its -o flag (imagecheck writes its own output).
func goBuildArgs(words []string) []string {
	for i := 0; i+1 < len(words); i++ {
		if words[i] != "go" || words[i+1] != "build" {
			continue
		}
		var args []string
		rest := words[i+2:]
		for j := 0; j < len(rest); j++ {
			switch {
			case rest[j] == "&&" || rest[j] == ";":
				return args
			case rest[j] == "-o":
				j++ // and its value
			case strings.HasPrefix(rest[j], "-o="):
			default:
				args = append(args, rest[j])
			}
		}
		return args
	}
	return nil
}

// apply copies what one COPY line takes from the context into the stage's
// file system, emulated under stageRoot, and returns how many files it
// copied. A source that matches nothing fails, as it fails `docker build`.
func (c copyInstruction) apply(root string, context map[string]bool, stageRoot string) (int, error) {
	n := 0
	for _, src := range c.sources {
		src = path.Clean(strings.TrimPrefix(src, "./"))
		matched := 0
		for file := range context {
			var target string
			switch {
			case file == src:
				// A file: into dest, or dest/<name> when dest is a folder.
				target = c.dest
				if strings.HasSuffix(c.dest, "/") || len(c.sources) > 1 {
					target = path.Join(c.dest, path.Base(file))
				}
			case strings.HasPrefix(file, src+"/"):
				// A folder: its contents go into dest.
				target = path.Join(c.dest, strings.TrimPrefix(file, src+"/"))
			default:
				continue
			}
			if err := copyFile(filepath.Join(root, filepath.FromSlash(file)), filepath.Join(stageRoot, filepath.FromSlash(target))); err != nil {
				return n, err
			}
			matched++
		}
		if matched == 0 {
			return n, fmt.Errorf("COPY %s: nothing in the build context matches (excluded by .dockerignore?)", src)
		}
		n += matched
	}
	return n, nil
}

func copyFile(from, to string) error {
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		return err
	}
	data, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, data, 0o644)
}
