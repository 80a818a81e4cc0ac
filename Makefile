# PhotonCloud build, test and lint entry points. `make test` is what a change
# must pass; .ci/run calls `make lint test` on a fresh machine.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c

GO_ROOT_BIN := /usr/local/go/bin
export PATH := $(GO_ROOT_BIN):$(shell PATH=$(GO_ROOT_BIN):$$PATH go env GOPATH 2>/dev/null)/bin:$(PATH)

BIN := $(CURDIR)/bin
# End-to-end tests and benchmarks find chainfire, photon, etcd and etcdctl here.
export PHOTON_BIN_DIR := $(BIN)

TEST_TIMEOUT ?= 30m
# Every Go module of the repository except tools/, which only pins binaries.
MODULES := $(sort $(patsubst ./%,%,$(patsubst %/go.mod,%,$(shell find . -name go.mod -not -path './.git/*' -not -path './tools/*' -not -path './bin/*'))))
TOOLS_DEPS := tools/go.mod tools/go.sum

.PHONY: all build cmds etcd test soak dev lint bench-chainfire bench-chainfire-cluster bench-aegis bench-flashdns clean ensure-tools

all: build

ensure-tools:
	@scripts/ensure-tools.sh

build: cmds $(BIN)/etcdctl

# Every cmd/<name> becomes bin/<name>.
cmds:
	go build -o $(BIN)/ ./cmd/...

etcd: $(BIN)/etcd

$(BIN)/etcdctl: $(TOOLS_DEPS)
	cd tools && go build -o $@ go.etcd.io/etcd/etcdctl/v3

$(BIN)/etcd: $(TOOLS_DEPS)
	cd tools && go build -o $@ go.etcd.io/etcd/server/v3

$(BIN)/staticcheck: $(TOOLS_DEPS)
	cd tools && go build -o $@ honnef.co/go/tools/cmd/staticcheck

test: ensure-tools build etcd
	go test -race -count=1 -timeout $(TEST_TIMEOUT) ./...
	if [ -d test/etcdcompat ]; then cd test/etcdcompat && go test -race -count=1 -timeout $(TEST_TIMEOUT) ./...; fi

# The robustness test (test/robustness) for longer: SOAK_DURATION of kills,
# pauses, restarts and partitions of a 3-member cluster under traffic with
# leases, checked by porcupine.
SOAK_DURATION ?= 30m
soak: ensure-tools build etcd
	PHOTON_SOAK=1 PHOTON_SOAK_DURATION=$(SOAK_DURATION) go test -count=1 -timeout 0 -v -run TestRobustness ./test/robustness/

dev: ensure-tools build
	$(BIN)/photon dev

lint: $(BIN)/staticcheck
	@out=$$(gofmt -l $$(find . -name '*.go' -not -path './.git/*' -not -path '*/testdata/*')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	for m in $(MODULES); do echo "vet + staticcheck: $$m"; (cd $$m && go vet ./... && $(BIN)/staticcheck ./...); done

bench-chainfire: build etcd
	if [ -f bench/chainfire/run.sh ]; then bash bench/chainfire/run.sh; \
	elif [ -f bench/chainfire/Makefile ]; then $(MAKE) -C bench/chainfire; \
	else echo "bench/chainfire is not written yet" >&2; exit 1; fi

# The same comparison on 3-member clusters: puts to the leader and to all
# members, reads, watch fan-out and leader failover (bench/chainfire/README.md).
bench-chainfire-cluster: build etcd
	bash bench/chainfire/run.sh --cluster

# Aegis against the issue 4 targets: in-process decision latency, gRPC
# Authorize and token issuance (bench/aegis/README.md). run.sh builds the
# aegis and chainfire it measures from this tree itself.
bench-aegis:
	bash bench/aegis/run.sh

# FlashDNS's DNS data plane against NSD and Knot under the same dnsperf load
# (bench/flashdns/README.md).
bench-flashdns:
	bash bench/flashdns/run.sh

clean:
	rm -rf $(BIN)

# Regenerate the Go code of the protos under api/ (<component>/<version>/,
# each with its own buf.gen.yaml). The generated files are committed, so
# builds and CI never need the generators. buf (tools/buf) and the protoc
# plugins (tools/protoc-gen, pinned to the main module's protobuf and
# grpc-gateway versions) are built into bin/ once.
.PHONY: generate proto
proto: generate
PROTO_TOOLS := $(BIN)/buf $(BIN)/protoc-gen-go $(BIN)/protoc-gen-go-grpc $(BIN)/protoc-gen-grpc-gateway
generate: $(PROTO_TOOLS)
	cd api && $(BIN)/buf lint
	cd api && for t in */*/buf.gen.yaml; do \
		PATH="$(BIN):$$PATH" $(BIN)/buf generate --template "$$t" --path "$$(dirname "$$t")"; \
	done

$(BIN)/buf: tools/buf/go.mod tools/buf/go.sum
	cd tools/buf && go build -o $@ github.com/bufbuild/buf/cmd/buf

$(BIN)/protoc-gen-go: tools/protoc-gen/go.mod tools/protoc-gen/go.sum
	cd tools/protoc-gen && go build -o $@ google.golang.org/protobuf/cmd/protoc-gen-go

$(BIN)/protoc-gen-go-grpc: tools/protoc-gen/go.mod tools/protoc-gen/go.sum
	cd tools/protoc-gen && go build -o $@ google.golang.org/grpc/cmd/protoc-gen-go-grpc

$(BIN)/protoc-gen-grpc-gateway: tools/protoc-gen/go.mod tools/protoc-gen/go.sum
	cd tools/protoc-gen && go build -o $@ github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-grpc-gateway
