# DCIA toolkit. The README's two commands: `make run` and `make test`.
# Every target installs what it needs first (scripts/bootstrap.sh: Debian packages,
# the .venv virtual environment, Python dependencies) and is quick when that is done.

VENV   ?= .venv
PY     := $(VENV)/bin/python
PYTEST := $(VENV)/bin/pytest

.PHONY: setup test run cli shell p4 p4-check bench eval clean help demo-vehicle demo-video demo-text

help:
	@echo "make test      run the whole test suite (installs what it needs)"
	@echo "make run       the testbed demo: Mininet, P4 switches, edge and cloud (RUN_ARGS=...)"
	@echo "make cli       the same network, deployed, at the Mininet prompt"
	@echo "make demo-vehicle  onboard units, fusion at the roadside switch, the cloud decides (DEMO_ARGS=...)"
	@echo "make demo-video    cameras stream frames, switches transform, the cloud classifies; overload splitting (DEMO_ARGS=...)"
	@echo "make demo-text     the device tokenizes, switches pool embeddings, the cloud answers (DEMO_ARGS=...)"
	@echo "make shell     p4runtime-shell on a switch of the running testbed (SWITCH=s1, SHELL_ARGS=...)"
	@echo "make bench     benchmarks: switch packet rates, deployment time, overload and shares, failover, integrity, sealing (tables, results/*.json, *.png)"
	@echo "make eval      the evaluation: edge-only, cloud-only, edge-cloud and DCIA in every scenario (EVAL_ARGS=...)"
	@echo "make p4        compile p4src/dcia.p4 with p4c into p4src/build/ (needs p4c)"
	@echo "make p4-check  check that p4src/build/ matches the P4 sources"
	@echo "make setup     install Debian packages, the virtual environment and dependencies"

setup:
	@bash scripts/bootstrap.sh

test: setup
	$(PYTEST) $(PYTEST_ARGS)

# RUN_ARGS: options of `dcia testbed`, e.g. RUN_ARGS="--target bmv2 --requests 100"
run: setup
	$(VENV)/bin/dcia testbed run $(RUN_ARGS)

cli: setup
	$(VENV)/bin/dcia testbed cli $(RUN_ARGS)

# DEMO_ARGS: options of `python -m demos.vehicle`, e.g. DEMO_ARGS="--target bmv2 --drop 0.1"
demo-vehicle: setup
	$(PY) -m demos.vehicle $(DEMO_ARGS)

# DEMO_ARGS: options of `python -m demos.video`, e.g. DEMO_ARGS="--target bmv2 --cameras 2"
demo-video: setup
	$(PY) -m demos.video $(DEMO_ARGS)

# DEMO_ARGS: options of `python -m demos.text`, e.g. DEMO_ARGS="--target bmv2 --requests 60"
demo-text: setup
	$(PY) -m demos.text $(DEMO_ARGS)

# SHELL_ARGS: options of `dcia shell`, e.g. SHELL_ARGS="--topology topologies/redundant.toml";
# the certificates of a running testbed (mutual TLS, default run directory) are used when present
SWITCH ?= s1
TLS_DIR ?= logs/run/tls
shell: setup
	$(VENV)/bin/dcia shell $(SWITCH) $(if $(wildcard $(TLS_DIR)/ca.pem),--tls $(TLS_DIR)) $(SHELL_ARGS)

p4: setup
	$(VENV)/bin/dcia p4 compile

bench: setup
	$(PY) -m bench.switch_bench --out results
	$(PY) -m bench.deploy_bench --out results
	$(PY) -m bench.steering_bench --out results
	$(PY) -m bench.failover_bench --out results
	$(PY) -m bench.integrity_bench --out results
	$(PY) -m bench.sealing_bench --out results

# EVAL_ARGS: options of `dcia eval`, e.g. EVAL_ARGS="--scenario scenarios/constrained.toml --requests 50"
eval: setup
	$(VENV)/bin/dcia eval $(EVAL_ARGS)

p4-check: setup
	$(VENV)/bin/dcia p4 check

clean:
	rm -rf .pytest_cache results logs
	find . -name __pycache__ -prune -exec rm -rf {} +
