# hubflow — run `make help` for the targets.

IMG ?= hubflow/manager:dev
ENVTEST_K8S_VERSION ?= 1.37.2
CONTROLLER_TOOLS_VERSION ?= v0.23.0
HELM_VERSION ?= v4.3.2
NATS_URL ?= nats://nats.nats-system:4222
KUBECTL ?= kubectl
TEST_TIMEOUT ?= 20m

LOCALBIN ?= $(CURDIR)/bin
CONTROLLER_GEN ?= $(LOCALBIN)/tools/controller-gen
HELM ?= $(LOCALBIN)/tools/helm
ENVTEST_ASSETS ?= $(LOCALBIN)/k8s-$(ENVTEST_K8S_VERSION)

GO ?= go
GO_PACKAGES ?= ./...
# The Go client library is its own module, so applications do not inherit the
# operator's dependencies; its tests run a nats-server binary (bin/nats-server).
CLIENT_MODULE ?= pkg
# The client's Prometheus and OpenTelemetry adapters: modules of their own, so
# that the client pulls in neither.
ADAPTER_MODULES ?= pkg/hubflowprom pkg/hubflowotel
NATS_SERVER ?= $(LOCALBIN)/nats-server

# Recipes run in bash and stop at the first failing command of a pipe.
SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

.DEFAULT_GOAL := help

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make \033[36m<target>\033[0m\n"} \
		/^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2 } \
		/^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development

# The ClusterRole is generated as manager-role; config/default's namePrefix makes it hubflow-manager-role.
.PHONY: manifests
manifests: controller-gen ## Generate the CRDs (config/crd/bases) and the manager's ClusterRole (config/rbac/role.yaml) from markers.
	$(CONTROLLER_GEN) crd rbac:roleName=manager-role \
		paths="./api/...;./controllers/...;./cmd/..." \
		output:crd:artifacts:config=config/crd/bases \
		output:rbac:artifacts:config=config/rbac
	@# The Helm chart installs the same CRDs and ClusterRole rules: copied, never edited by hand.
	rm -f charts/hubflow/crds/*.yaml
	cp config/crd/bases/*.yaml charts/hubflow/crds/
	cp config/rbac/role.yaml charts/hubflow/files/manager-role.yaml

.PHONY: generate
generate: controller-gen ## Generate the DeepCopy methods of the API types.
	$(CONTROLLER_GEN) object:headerFile=hack/boilerplate.go.txt paths="./api/..."

.PHONY: fmt
fmt: ## Run go fmt.
	$(GO) fmt $(GO_PACKAGES)
	$(GO) -C $(CLIENT_MODULE) fmt ./...
	for m in $(ADAPTER_MODULES); do $(GO) -C $$m fmt ./... || exit 1; done

.PHONY: vet
vet: ## Run go vet.
	$(GO) vet $(GO_PACKAGES)
	$(GO) -C $(CLIENT_MODULE) vet ./...
	for m in $(ADAPTER_MODULES); do $(GO) -C $$m vet ./... || exit 1; done

.PHONY: test
test: manifests generate fmt vet envtest helm nats-server verify-image ## Run all tests (the operator's and the client module's) against the pinned kube-apiserver, etcd and nats-server.
	HUBFLOW_NATS_SERVER="$(NATS_SERVER)" $(GO) -C $(CLIENT_MODULE) test ./... -count=1 -timeout $(TEST_TIMEOUT)
	for m in $(ADAPTER_MODULES); do HUBFLOW_NATS_SERVER="$(NATS_SERVER)" $(GO) -C $$m test ./... -count=1 -timeout $(TEST_TIMEOUT) || exit 1; done
	KUBEBUILDER_ASSETS="$(ENVTEST_ASSETS)" HUBFLOW_HELM="$(HELM)" HUBFLOW_NATS_SERVER="$(NATS_SERVER)" $(GO) test $(GO_PACKAGES) -count=1 -timeout $(TEST_TIMEOUT)

.PHONY: faults-soak
faults-soak: nats-server ## Run the fault suite SOAK_COUNT times (20) in a row under CPU load (pkg/hubflow's tests in a loop + one busy loop per CPU); stops at the first failure with its dump.
	SOAK_COUNT="$(or $(SOAK_COUNT),20)" GO="$(GO)" hack/faults-soak.sh

.PHONY: test-deadletter-long
test-deadletter-long: envtest ## Run the dead-letter conformance under faults with DLQ_MESSAGES (10000) messages per semantic, DLQ_POISON (1 in 50) of them poison.
	KUBEBUILDER_ASSETS="$(ENVTEST_ASSETS)" DLQ_MESSAGES="$(or $(DLQ_MESSAGES),10000)" $(GO) test ./test/deadletter -count=1 -v -timeout 30m

.PHONY: test-gateway-long
test-gateway-long: envtest ## Run the gateway's fault proof (test/gateway: replica killed, push endpoint failing) GATEWAY_ROUNDS (20) times in a row.
	KUBEBUILDER_ASSETS="$(ENVTEST_ASSETS)" $(GO) test ./test/gateway -count=$(or $(GATEWAY_ROUNDS),20) -v -timeout 60m

.PHONY: demo
demo: envtest ## Run hubflow end to end locally: control plane, 3-node NATS, manager, the sample flows (ARGS=--keep to explore).
	@echo "compiling the demo (the manager, NATS and the client library; a minute on a cold cache)…"
	$(GO) run ./cmd/demo $(ARGS)

.PHONY: bench
bench: envtest ## Measure the operator at scale (N=1000 Topics + Consumers by default: HUBFLOW_BENCH_N, _PRODUCERS=1, _ORDER=kind, _IDLE, _OBSERVE, _RESYNC, _QPS, _BURST, _WORKERS); figures go to bench.txt.
	KUBEBUILDER_ASSETS="$(ENVTEST_ASSETS)" $(GO) test ./test/bench -run '^$$' -bench . -benchtime 1x -timeout 30m | tee bench.txt

.PHONY: bench-gateway
bench-gateway: envtest ## Measure the HTTP gateway against the Go client in the same run (ingest and push, each semantic, concurrency 1 and 16; HUBFLOW_GATEWAY_BENCH_N messages per case, 2000); figures go to bench-gateway.txt.
	KUBEBUILDER_ASSETS="$(ENVTEST_ASSETS)" $(GO) test ./test/gateway -run '^$$' -bench . -benchtime 1x -timeout 30m | tee bench-gateway.txt

.PHONY: verify-fmt
verify-fmt: ## Fail when a Go file is not gofmt-formatted (CI; `make test` formats instead).
	@unformatted="$$(gofmt -l $$(git ls-files --cached --others --exclude-standard -- '*.go'))"; \
	if [[ -n "$$unformatted" ]]; then \
		echo "not gofmt-formatted (run 'make fmt'):" >&2; echo "$$unformatted" >&2; exit 1; fi

.PHONY: verify-image
verify-image: ## Compile the manager from exactly what the Dockerfile's COPY lines and .dockerignore let in (no Docker engine needed).
	$(GO) -C hack/tools/imagecheck test -count=1 ./...
	$(GO) -C hack/tools/imagecheck run . -root $(CURDIR)

.PHONY: verify-manifests
verify-manifests: manifests generate ## Fail when generated files (CRDs, RBAC, DeepCopy) differ from what is committed.
	@git diff --exit-code -- config api charts || { \
		echo "generated files are stale: run 'make manifests generate' and commit the result" >&2; exit 1; }
	@untracked="$$(git ls-files --others --exclude-standard -- config api charts)"; \
	if [[ -n "$$untracked" ]]; then \
		echo "generated files are not committed:" >&2; echo "$$untracked" >&2; exit 1; fi

##@ Build

.PHONY: build
build: ## Build the manager into bin/manager and the kubectl plugin into bin/kubectl-hubflow.
	$(GO) build -o bin/manager ./cmd/manager
	$(GO) build -o bin/kubectl-hubflow ./cmd/kubectl-hubflow

.PHONY: run
run: ## Run the manager against the current kubeconfig (needs a NATS server, see --nats-url).
	$(GO) run ./cmd/manager --zap-devel $(ARGS)

.PHONY: docker-build
docker-build: ## Build the manager image (IMG=...).
	docker build -t $(IMG) .

##@ Deployment

.PHONY: deploy
deploy: ## Install CRDs, RBAC and the manager into the current kubeconfig's cluster (IMG=..., NATS_URL=...).
	@overlay="$$(hack/deploy-overlay.sh "$(IMG)" "$(NATS_URL)")"; \
	trap 'rm -rf "$$overlay"' EXIT; \
	$(KUBECTL) apply --server-side --field-manager=hubflow-deploy -k "$$overlay"

.PHONY: undeploy
undeploy: ## Remove hubflow: Topics, Producers and Consumers first (while the manager runs their finalizers), then the manager, RBAC and CRDs.
	$(KUBECTL) delete consumers.hubflow.io,producers.hubflow.io,topics.hubflow.io --all --all-namespaces --ignore-not-found --wait --timeout=5m
	$(KUBECTL) delete -k config/default --ignore-not-found

##@ Tools

.PHONY: helm
helm: ## Install the pinned Helm CLI into bin/tools when missing or of another version (the chart tests render with it).
	@if ! [[ -x "$(HELM)" ]] || [[ "$$("$(HELM)" version --template '{{.Version}}')" != "$(HELM_VERSION)" ]]; then \
		echo "installing helm $(HELM_VERSION) into $(LOCALBIN)/tools (compiled from the Go module proxy: a few minutes on a cold cache)"; \
		GOBIN="$(LOCALBIN)/tools" $(GO) install -ldflags "-X helm.sh/helm/v4/internal/version.version=$(HELM_VERSION)" helm.sh/helm/v4/cmd/helm@$(HELM_VERSION); \
	fi

.PHONY: controller-gen
controller-gen: ## Install the pinned controller-gen into bin/tools when missing or of another version.
	@if ! [[ -x "$(CONTROLLER_GEN)" ]] || [[ "$$("$(CONTROLLER_GEN)" --version)" != "Version: $(CONTROLLER_TOOLS_VERSION)" ]]; then \
		echo "installing controller-gen $(CONTROLLER_TOOLS_VERSION) into $(LOCALBIN)/tools"; \
		GOBIN="$(LOCALBIN)/tools" $(GO) install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS_VERSION); \
	fi

.PHONY: envtest
envtest: ## Build the pinned kube-apiserver, kubectl and etcd into bin/k8s-<version> when missing.
	@hack/build-envtest.sh "$(ENVTEST_ASSETS)"

.PHONY: nats-server
nats-server: ## Build bin/nats-server, at the version go.mod pins, when missing or of another version (the client module's tests run it).
	@want="$$($(GO) list -m -f '{{.Version}}' github.com/nats-io/nats-server/v2)"; \
	if ! [[ -x "$(NATS_SERVER)" ]] || [[ "$$("$(NATS_SERVER)" --version)" != "nats-server: $$want" ]]; then \
		echo "building nats-server $$want into $(NATS_SERVER)"; \
		$(GO) build -o "$(NATS_SERVER)" github.com/nats-io/nats-server/v2; \
	fi
