# Builds bin/cameleer (the appliance, with the engine payload appended) and
# bin/cameleer-controlplane. Every engine part is built from the pinned
# sources in embed/ (versions in embed/versions) into build/; a part is
# rebuilt only when its module, its build script or the pins change, and Go's
# build cache makes the rest of a rebuild cheap.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DELETE_ON_ERROR:

BUILD   := build
PAYLOAD := $(BUILD)/payload
STAMP   := $(BUILD)/stamp

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo v0.0.0-dev)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
export SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
export GONOSUMDB := github.com/k3s-io/*,github.com/flannel-io/flannel

# Inputs of one engine part: its nested module and its build script.
part_deps = $(shell find embed/$(1) -type f) scripts/build-$(2).sh scripts/gobuild.sh embed/versions

GO_LDFLAGS := -s -w -X github.com/cameleer/cameleer/version.Version=$(VERSION) -X github.com/cameleer/cameleer/version.Commit=$(COMMIT)

# The ed25519 key that signs air-gapped bundles; its public half is baked
# into cameleer, which checks bundles with it. A release build names the
# project's key (kept offline); otherwise one is made for this build tree
# on first use (docs/install.md).
SIGNING_KEY ?= $(BUILD)/signing/bundle.key

.PHONY: all
all: bin/cameleer bin/cameleer-controlplane

# Host binaries of the engine.
$(STAMP)/kubernetes: $(call part_deps,kubernetes,kubernetes)
	scripts/build-kubernetes.sh $(PAYLOAD)/bin && mkdir -p $(@D) && touch $@
$(STAMP)/kine: $(call part_deps,kine,kine)
	scripts/build-kine.sh $(PAYLOAD)/bin && mkdir -p $(@D) && touch $@
$(STAMP)/containerd: $(call part_deps,containerd,containerd)
	scripts/build-containerd.sh $(PAYLOAD)/bin && mkdir -p $(@D) && touch $@
$(STAMP)/runc: $(call part_deps,runc,runc)
	scripts/build-runc.sh $(PAYLOAD)/bin && mkdir -p $(@D) && touch $@
$(STAMP)/network: $(call part_deps,network,network)
	scripts/build-network.sh $(PAYLOAD)/bin && mkdir -p $(@D) && touch $@
$(STAMP)/cni: $(call part_deps,cni,cni)
	scripts/build-cni.sh $(PAYLOAD)/cni && mkdir -p $(@D) && touch $@

# Binaries that only go into images.
$(STAMP)/coredns: $(call part_deps,coredns,coredns)
	scripts/build-coredns.sh $(BUILD)/imgbin && mkdir -p $(@D) && touch $@
$(STAMP)/traefik: $(call part_deps,traefik,traefik) $(wildcard scripts/traefik/*)
	scripts/build-traefik.sh $(BUILD)/imgbin && mkdir -p $(@D) && touch $@
$(STAMP)/local-path-provisioner: $(call part_deps,local-path-provisioner,local-path-provisioner)
	scripts/build-local-path-provisioner.sh $(BUILD)/imgbin && mkdir -p $(@D) && touch $@
$(STAMP)/pause: scripts/build-pause.sh embed/versions
	scripts/build-pause.sh $(BUILD)/imgbin && mkdir -p $(@D) && touch $@

# Kubernetes objects that come with a part's source (Traefik's CRDs).
$(STAMP)/manifests: scripts/build-manifests.sh embed/traefik/go.mod embed/versions
	scripts/build-manifests.sh $(PAYLOAD)/manifests && mkdir -p $(@D) && touch $@

# The Java agent injected into every app, compiled with Maven (its Camel
# bridge against Camel's API) and the host's JDK.
$(STAMP)/agent: $(shell find agent -type f) scripts/build-agent.sh
	AGENT_VERSION=$(VERSION) scripts/build-agent.sh $(PAYLOAD)/agent && mkdir -p $(@D) && touch $@

IMAGE_BINS := coredns traefik local-path-provisioner pause
$(STAMP)/images: $(addprefix $(STAMP)/,$(IMAGE_BINS)) $(BUILD)/tools/mkimage scripts/build-images.sh
	scripts/build-images.sh $(BUILD) && touch $@

ENGINE := kubernetes kine containerd runc network cni manifests agent images

# Build tools and cameleer itself, from the main module. go build is cheap
# when nothing changed; the copy keeps the old timestamp then, so the payload
# is not packed again.
.PHONY: FORCE
$(BUILD)/tools/%: FORCE
	@mkdir -p $(@D)
	CGO_ENABLED=0 go build -trimpath -o $@.new ./scripts/$*
	@if cmp -s $@.new $@; then rm $@.new; else mv $@.new $@; fi

$(SIGNING_KEY): | $(BUILD)/tools/mkbundle
	$(BUILD)/tools/mkbundle -key $@ keygen

$(BUILD)/cameleer: $(SIGNING_KEY) $(BUILD)/tools/mkbundle FORCE
	@mkdir -p $(@D)
	CGO_ENABLED=0 go build -trimpath -ldflags "$(GO_LDFLAGS) -X github.com/cameleer/cameleer/version.SigningKey=$$($(BUILD)/tools/mkbundle -key $(SIGNING_KEY) pub)" -o $@.new ./cmd/cameleer
	@if cmp -s $@.new $@; then rm $@.new; else mv $@.new $@; fi

# The console (web/), with the npm packages package-lock.json pins, into
# web/dist, which cameleer-controlplane embeds. dist/.keep stays, so that
# the Go build works before the console is built.
web/node_modules/.installed: web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund
	touch $@
web/dist/index.html: web/node_modules/.installed $(shell find web/src -type f) web/index.html web/vite.config.ts web/tsconfig.json
	cd web && npm run build
	touch web/dist/.keep

bin/cameleer-controlplane: web/dist/index.html FORCE
	@mkdir -p $(@D)
	CGO_ENABLED=0 go build -trimpath -ldflags '$(GO_LDFLAGS)' -o $@.new ./cmd/cameleer-controlplane
	@if cmp -s $@.new $@; then rm $@.new; else mv $@.new $@; fi

bin/cameleer: $(BUILD)/cameleer $(addprefix $(STAMP)/,$(ENGINE)) $(BUILD)/tools/mkpayload
	@mkdir -p $(@D)
	$(BUILD)/tools/mkpayload -versions embed/versions -root $(PAYLOAD) -exe $(BUILD)/cameleer \
		-o $@ -sbom bin/cameleer.spdx.json -created $(SOURCE_DATE_EPOCH) -agent-version $(VERSION)

.PHONY: sbom
sbom: bin/cameleer

# The air-gapped bundle: cameleer, install.sh and the SBOM, their
# SHA256SUMS and its signature (docs/install.md).
BUNDLE := $(BUILD)/cameleer-bundle-$(VERSION)-linux-$(shell go env GOARCH).tar
.PHONY: bundle
bundle: bin/cameleer $(BUILD)/tools/mkbundle
	@mkdir -p $(BUILD)/bundle
	@# One bundle in build/: each is the binary's size again.
	rm -f $(filter-out $(BUNDLE),$(wildcard $(BUILD)/cameleer-bundle-*.tar))
	sed 's|^signing_key=$$|signing_key='"$$($(BUILD)/tools/mkbundle -key $(SIGNING_KEY) pub)"'|' installer/install.sh >$(BUILD)/bundle/install.sh
	chmod 0755 $(BUILD)/bundle/install.sh
	$(BUILD)/tools/mkbundle -key $(SIGNING_KEY) -o $(BUNDLE) -dir cameleer-$(VERSION) \
		bin/cameleer $(BUILD)/bundle/install.sh bin/cameleer.spdx.json
	@echo "bundle: $(BUNDLE)"

# Unit tests: fast, no root, no engine.
.PHONY: test-unit
test-unit:
	go test ./...

# Everything: unit tests, the tests of the built payload, then a real node
# brought up on this host and removed again (root; ports 80, 443, 5000, 6443
# and 10248-10259 free).
.PHONY: test
test: bin/cameleer bin/cameleer-controlplane bundle lint
	cd web && npm test
	go test ./...
	$(MAKE) fuzz
	CAMELEER_BIN=$(CURDIR)/bin/cameleer CAMELEER_BUILD=$(CURDIR)/$(BUILD) CAMELEER_BUNDLE=$(CURDIR)/$(BUNDLE) \
		go test -tags payload -count=1 ./test/payload/...
	$(MAKE) test-docker
	$(MAKE) test-node
	$(MAKE) test-multinode
	$(MAKE) test-console

# go vet and staticcheck over every build tag the tree uses; the layering
# rules are a test (test/layout) in go test ./...
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
TAGS := node docker payload multinode console
.PHONY: lint
lint:
	go vet -tags '$(TAGS)' ./...
	go run $(STATICCHECK) -tags '$(TAGS)' ./...

# Every fuzz target, briefly (FUZZTIME inputs each, 3-10 s here); a longer
# run finds more. A count, not a duration: Go 1.26's fuzz coordinator can
# report its own end-of-time deadline as a failure (golang/go#75804).
FUZZTIME ?= 50000x
.PHONY: fuzz
# A short minimize time keeps a late find from running long.
FUZZ := go test -run XXX -fuzztime $(FUZZTIME) -fuzzminimizetime 1s -fuzz
fuzz:
	$(FUZZ) '^FuzzParseToken$$' ./api
	$(FUZZ) '^FuzzParseEnrollRequest$$' ./api
	$(FUZZ) '^FuzzParseHeader$$' ./tunnel
	$(FUZZ) '^FuzzTransportResponse$$' ./tunnel
	$(FUZZ) '^FuzzSession$$' ./tunnel/mux
	$(FUZZ) '^FuzzCheck$$' ./controlplane/artifact
	$(FUZZ) '^FuzzNested$$' ./controlplane/artifact
	$(FUZZ) '^FuzzIngest$$' ./controlplane/telemetry
	# Each input is a spool opened on disk, with its fsyncs: fewer inputs.
	$(FUZZ) '^FuzzSpoolOpen$$' -fuzztime 3000x ./appliance/collector

# The Docker orchestrator on a Docker Engine the test starts and removes
# itself (root; docker.io from scripts/deps.sh), with the payload's Traefik,
# Java runtime and agent; then `cameleer run --orchestrator docker` with a
# control plane, through deploy, stop, start, restart and a promotion
# (the runner's registry takes port 5000). One package at a time: each
# test's cleanup removes the Docker bridges that were not there before it.
.PHONY: test-docker
test-docker: bin/cameleer
	CAMELEER_BUILD=$(CURDIR)/$(BUILD) CAMELEER_BIN=$(CURDIR)/bin/cameleer \
		go test -tags docker -count=1 -p 1 -timeout 15m -v ./appliance/orchestrator/... ./test/docker/...

# Only the node test, with the payload built, and the builds it upgrades
# to (scripts/upgrade-binaries.sh).
.PHONY: test-node
test-node: bin/cameleer bin/cameleer-controlplane
	scripts/upgrade-binaries.sh
	CAMELEER_BIN=$(CURDIR)/bin/cameleer CAMELEER_UPGRADE_DIR=$(CURDIR)/$(BUILD)/upgrade \
		go test -tags node -count=1 -timeout 40m -v ./test/node/...

# A cluster of three hosts, each a container of a Docker Engine the test
# starts, booted from a Debian root file system built here (debootstrap);
# after test-node, never beside it (a reset on this host would stop the
# containers' nodes too).
.PHONY: test-multinode
test-multinode: bin/cameleer
	scripts/upgrade-binaries.sh
	scripts/node-rootfs.sh $(BUILD)/multinode/rootfs.tar
	CAMELEER_BIN=$(CURDIR)/bin/cameleer CAMELEER_UPGRADE_DIR=$(CURDIR)/$(BUILD)/upgrade \
		CAMELEER_NODE_ROOTFS=$(CURDIR)/$(BUILD)/multinode/rootfs.tar \
		go test -tags multinode -count=1 -timeout 30m -v ./test/multinode/...

# The console in Debian's Chromium (playwright-core) against a control
# plane and a runner on a Docker Engine of the test's (root; 127.0.0.1:5000
# free); its screenshots land in docs/console/.
.PHONY: test-console
test-console: bin/cameleer bin/cameleer-controlplane
	CAMELEER_BIN=$(CURDIR)/bin/cameleer go test -tags console -count=1 -timeout 20m -v ./test/console/...

.PHONY: clean
clean:
	rm -rf $(BUILD) bin
