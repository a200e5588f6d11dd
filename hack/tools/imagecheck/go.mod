// Checks the manager image's build context without a Docker engine: see main.go.
module hubflow.io/hack/tools/imagecheck

go 1.26.0

require github.com/moby/patternmatcher v0.6.1
