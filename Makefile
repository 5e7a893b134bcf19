# The README's commands. GNNZOO_DATA_DIR must point at raw datasets (see README "Working offline").
PY := .venv/bin/python

.PHONY: setup run test test-fast bench

setup:
	bash scripts/setup.sh

# set up, then train the default (GCN on Cora) into ./zoo and print the result
run: setup
	$(PY) train.py

# set up, then run every test (fast + slow)
test: setup
	$(PY) -m pytest -q

# the fast suite only (minutes)
test-fast: setup
	$(PY) -m pytest -q -m "not slow"

bench: setup
	$(PY) benchmarks/overhead.py
	$(PY) benchmarks/accuracy.py
