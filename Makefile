# fleet: build, test and demo. `make help` lists the targets.

export PATH := /usr/local/go/bin:$(PATH)
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
SIM_DIR  ?= /var/tmp/fleet-sim/s0
SIM_BIN  ?= /var/cache/fleet-sim/bin
SIM_LAYER ?= /var/cache/fleet-sim/layer
SIM_ID   ?= s0
TOPOLOGY ?= ha
FUZZTIME ?= 30s
# where the fault tests record what they saw, for testing/RELIABILITY.md
RELIABILITY_DIR ?= /var/tmp/fleet-reliability
# make bench: host counts compared (200 is opt-in: BENCH_SIZES=10,50,200) and runs per tool
BENCH_SIZES ?= 10,50
BENCH_RUNS ?= 5
# Runs of the Ansible variants, when fewer than BENCH_RUNS (0: as many).
BENCH_PEER_RUNS ?= 0
# Tools left out: tool, or tool@N at N hosts (Ansible's defaults take half an hour at 200).
BENCH_SKIP ?= ansible-default@200
# make bench's apply at scale: a load balancer, 3 masters and this many workers (make bench-scale BENCH_APPLY_WORKERS=100)
BENCH_APPLY_WORKERS ?= 25

.PHONY: help setup build test unit integration fuzz bench bench-prepare bench-scale sim-tools sim-up sim-down demo clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

setup: ## install what the tests and demo need (Debian 12, as root)
	./scripts/setup.sh

build: ## build bin/fleet
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o bin/fleet ./cmd/fleet

test: sim-tools ## vet, unit and integration tests on simulated hosts (root), short fuzzing
	$(GO) vet ./...
	cd testing/tools/kubernetes && $(GO) vet ./... && FLEET_INTEGRATION=1 $(GO) test -count=1 ./...
	rm -rf $(RELIABILITY_DIR)
	FLEET_RELIABILITY_DIR=$(RELIABILITY_DIR) FLEET_INTEGRATION=1 FLEET_SIM_LAYER=$(SIM_LAYER) $(GO) test -race -count=1 -timeout 40m $$($(GO) list ./... | grep -v /testing/proof)
	$(GO) run ./testing/cmd/fleet-reliability -in $(RELIABILITY_DIR) -out testing/RELIABILITY.md
	FLEET_INTEGRATION=1 FLEET_SIM_LAYER=$(SIM_LAYER) $(GO) test -count=1 -v ./testing/proof
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME) ./inventory

unit: ## tests that need no root and no simulated hosts
	$(GO) test -count=1 ./...

fuzz: ## fuzz the inventory loader for 10 minutes
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime 10m ./inventory

bench: sim-tools build ## micro-benchmarks; fleet vs ansible-playbook vs OpenSSH vs pdsh (BENCH_SIZES hosts); apply overhead; apply at scale
	$(GO) test -run '^$$' -bench . -benchmem ./internal/... | tee testing/bench/micro.txt
	command -v ansible-playbook >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q ansible-core
	command -v pdsh >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q pdsh
	$(GO) build -o bin/fleet-bench ./testing/cmd/fleet-bench
	./bin/fleet-bench compare -sizes $(BENCH_SIZES) -runs $(BENCH_RUNS) -peer-runs $(BENCH_PEER_RUNS) -skip $(BENCH_SKIP) -out testing/bench -apply-layer $(SIM_LAYER) -apply-workers $(BENCH_APPLY_WORKERS) -fleet bin/fleet

bench-prepare: sim-tools ## only the prepare row: 20 bare hosts, fleet prepare against parallel scp (testing/bench/PREPARE.md)
	$(GO) build -o bin/fleet-bench ./testing/cmd/fleet-bench
	./bin/fleet-bench prepare -runs 5 -layer $(SIM_LAYER) -out testing/bench/PREPARE.md

bench-scale: sim-tools build ## only the apply at scale: LB, 3 masters, BENCH_APPLY_WORKERS workers (testing/bench/SCALE-N.md)
	$(GO) build -o bin/fleet-bench ./testing/cmd/fleet-bench
	./bin/fleet-bench scale -workers $(BENCH_APPLY_WORKERS) -layer $(SIM_LAYER) -fleet bin/fleet -out testing/bench/SCALE-$(BENCH_APPLY_WORKERS).md

sim-tools: ## build kubeadm, the control plane, etcd, cfssl and the emulated kubelet (cached)
	./testing/tools/build.sh $(SIM_BIN)
	$(GO) run ./testing/cmd/fleet-sim layer -bin $(SIM_BIN) -layer $(SIM_LAYER)

sim-up: sim-tools ## bring up simulated hosts (TOPOLOGY=ha or hosts-N) with the node binaries installed
	$(GO) run ./testing/cmd/fleet-sim up -topology $(TOPOLOGY) -id $(SIM_ID) -dir $(SIM_DIR) -layer $(SIM_LAYER)

sim-down: ## remove the simulated hosts and everything they left
	$(GO) run ./testing/cmd/fleet-sim down -id $(SIM_ID) -dir $(SIM_DIR)

demo: build sim-up ## simulated HA cluster up, fleet apply, then kubectl get nodes through the load balancer
	./bin/fleet check -i $(SIM_DIR)/inventory.yaml
	./bin/fleet apply -i $(SIM_DIR)/inventory.yaml --generate-ca
	$(SIM_BIN)/kubectl --kubeconfig $(SIM_DIR)/sim-$(SIM_ID).kubeconfig get nodes -o wide
	./bin/fleet apply -i $(SIM_DIR)/inventory.yaml

clean: sim-down ## remove build output and simulated hosts
	rm -rf bin
