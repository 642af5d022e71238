# Staybase developer commands. Needs only GNU make and python3 (3.11+).
#   make run    set up .venv, migrate, seed a small demo, start the API + job workers
#   make test   set up .venv, run pytest (ARGS="-k booking -x" passes options through)

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
MANAGE := $(BIN)/python manage.py
DEPS_STAMP := $(VENV)/.requirements-installed
HOST ?= 127.0.0.1
PORT ?= 8000
ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help venv run test lint lines check bench schemathesis faults cluster cluster-status cluster-down clean distclean

help:
	@echo "make run        set up, migrate, seed demo data, serve http://$(HOST):$(PORT)/ with the job worker"
	@echo "make test       run the test suite (ARGS='...' for pytest options; honours DATABASE_URL/REDIS_URL)"
	@echo "make lint       ruff check + ruff format --check + mypy (domain apps strict, core/)"
	@echo "make lines      non-blank lines per app, infrastructure against domain, and their ratio"
	@echo "make check      migrations are up to date, OpenAPI schema validates without warnings"
	@echo "make bench      run the benchmark harness in bench/"
	@echo "make cluster    start the local scaled-out cluster (API=N instances, CLUSTER_PORT=8080); cluster-status, cluster-down"
	@echo "make schemathesis  contract-test a live server against its OpenAPI schema (needs DATABASE_URL, REDIS_URL)"
	@echo "make faults     fault suite: own PostgreSQL + Redis, kill/hang them under load, print a table (ARGS='--short')"
	@echo "make clean      remove caches, test databases and collected static files"
	@echo "make distclean  clean, then also remove .venv, the demo database and media"

$(BIN)/python:
	@$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); \
		echo "Could not create $(VENV) with $(PYTHON) (on Debian/Ubuntu: apt install python3-venv)." >&2; exit 1; }

# Reinstall only when requirements.txt is newer than the stamp.
$(DEPS_STAMP): requirements.txt | $(BIN)/python
	$(BIN)/python -m pip install --disable-pip-version-check --quiet -r requirements.txt
	@touch $@

venv: $(DEPS_STAMP)

run: $(DEPS_STAMP)
	$(MANAGE) migrate --noinput
	$(MANAGE) seed_demo --small --if-empty
	$(MANAGE) create_demo_staff
	$(MANAGE) setup_schedules
	$(MANAGE) warm_cache --on-start
	@echo "Staybase API on http://$(HOST):$(PORT)/api/docs/ (admin: http://$(HOST):$(PORT)/admin/). Ctrl-C stops both."
	@echo "WebSockets on ws://$(HOST):$(PORT)/api/v1/ws/ (runserver serves config.asgi; demo: http://$(HOST):$(PORT)/live/)."
	@$(MANAGE) run_dev $(HOST):$(PORT)

test: $(DEPS_STAMP)
	$(BIN)/pytest $(ARGS)

lint: $(DEPS_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

lines: $(DEPS_STAMP)
	$(BIN)/python bench/lines.py $(ARGS)

check: $(DEPS_STAMP)
	$(MANAGE) check --fail-level WARNING
	$(MANAGE) makemigrations --check --dry-run
	$(MANAGE) spectacular --validate --fail-on-warn --file /dev/null

API ?= 2
cluster: $(DEPS_STAMP)
	$(BIN)/python -m cluster.run up --api $(API) $(ARGS)

cluster-status: $(DEPS_STAMP)
	$(BIN)/python -m cluster.run status

cluster-down: $(DEPS_STAMP)
	$(BIN)/python -m cluster.run down

bench: $(DEPS_STAMP)
	$(BIN)/python bench/run.py $(ARGS)

# PostgreSQL + Redis (DATABASE_URL, REDIS_URL: its own Redis db, flushed); 0 failures expected.
schemathesis: $(DEPS_STAMP)
	bash .ci/schemathesis

# Fault suite (bench/faults.py): starts its own PostgreSQL, Redis, API and workers; needs
# redis-server and PostgreSQL's binaries (PG_BIN, default /usr/lib/postgresql/15/bin).
faults: $(DEPS_STAMP)
	$(BIN)/python bench/faults.py $(ARGS)

clean:
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -exec rm -rf {} +
	rm -rf .pytest_cache .ruff_cache .mypy_cache staticfiles .test-db-*

distclean: clean
	rm -rf $(VENV) media db.sqlite3 db.sqlite3-wal db.sqlite3-shm
