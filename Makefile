# Thin aliases over the go tool. `make test` is what CI runs (via .ci/run).
GO ?= go
PKGS ?= ./...
BENCH ?= .
BENCHTIME ?= 3s

.PHONY: run test fmt-check vet lint bench bench-blockstore bench-idle bench-gateway bench-sync jepsen jepsen-soak generate build tidy

## run: start the product on its embedded default (a local 3-node cluster)
run:
	$(GO) run ./cmd/cofferd dev

## test: gofmt check + go vet + go test -race
test: fmt-check vet
	$(GO) test -race -count=1 -timeout 15m $(PKGS)

fmt-check:
	@out="$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))"; \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

## lint: gofmt + go vet + staticcheck-free checks that need no extra install
lint: fmt-check vet
	$(GO) mod verify

## bench: benchmarks (figures go to BENCHMARKS.md); BENCH=regexp BENCHTIME=...
bench:
	$(GO) test -run '^$$' -bench '$(BENCH)' -benchtime $(BENCHTIME) -timeout 30m $(PKGS)

## bench-blockstore: block store figures as per-round ratios to same-moment disk references (ROUNDS=5)
bench-blockstore:
	bash scripts/bench-blockstore.sh

## bench-idle: CPU share of one core that the 3-node dev cluster (8 shard groups) uses at rest
bench-idle:
	$(GO) test -run '^$$' -bench IdleDevCluster -benchtime 1x -count $${COUNT:-3} ./cmd/cofferd

## bench-gateway: 1 GiB up/down and 64-client small commits through the gateway of a 3-node cluster, with disk/loopback/fsync references (COUNT=3)
bench-gateway:
	$(GO) test -run '^$$' -bench Gateway -benchtime 1x -count $${COUNT:-3} -timeout 30m ./cluster

## bench-sync: sync client: ingest vs SHA-256, first sync of 10k small files and of 1 GiB vs cp -r, edit-to-visible latency of two --watch clients (COUNT=3)
bench-sync:
	$(GO) test -run '^$$' -bench Sync -benchtime 1x -count $${COUNT:-3} -timeout 60m ./client/syncer

## jepsen: the short fault-injection suite (every fault kind and workload, a few minutes; network faults need root)
jepsen:
	bash scripts/jepsen-deps.sh
	$(GO) run ./cmd/coffer-jepsen -suite ci -timeout 8m -out $${OUT:-jepsen-results}

## jepsen-soak: long fault-injection runs: DURATION=30m RUNS=1 SUITE=full
jepsen-soak:
	bash scripts/jepsen-deps.sh
	$(GO) run ./cmd/coffer-jepsen -suite $${SUITE:-full} -duration $${DURATION:-30m} -runs $${RUNS:-1} -out $${OUT:-jepsen-results}

## generate: regenerate generated code (protobuf stubs; installs Debian's protoc if missing)
generate:
	@command -v protoc >/dev/null 2>&1 || { apt-get update && apt-get install -y protobuf-compiler; }
	$(GO) generate $(PKGS)

build:
	CGO_ENABLED=0 $(GO) build -o bin/ ./cmd/...

tidy:
	$(GO) mod tidy
