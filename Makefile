# The two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test demo screenshots system-deps test-deps clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

# The lab (demo and tests) needs sshd and PostgreSQL 15; install them with apt when we are root and missing.
system-deps:
	@if [ "$$(id -u)" = 0 ]; then \
	  missing=""; \
	  [ -x /usr/sbin/sshd ] || missing="$$missing openssh-server"; \
	  command -v tmux >/dev/null || missing="$$missing tmux"; \
	  [ -x /usr/lib/postgresql/15/bin/postgres ] || missing="$$missing postgresql-15"; \
	  command -v openssl >/dev/null || missing="$$missing openssl"; \
	  if [ -n "$$missing" ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  fi; \
	fi

# The tests also run the clients people use (psql, Java 17 + PgJDBC, Go, Node: tests/test_client_stacks.py),
# drive the browser mode in Chromium (tests/test_tui_browser.py), and sign with the signers' real
# counterparts: SoftHSM2 as a PKCS#11 token, CFSSL as an organisation's CA server.
test-deps: system-deps
	@if [ "$$(id -u)" = 0 ]; then \
	  missing=""; \
	  [ -e /usr/lib/softhsm/libsofthsm2.so ] || missing="$$missing softhsm2"; \
	  command -v cfssl >/dev/null || missing="$$missing golang-cfssl"; \
	  command -v psql >/dev/null || missing="$$missing postgresql-client-15"; \
	  command -v javac >/dev/null || missing="$$missing openjdk-17-jdk-headless"; \
	  [ -f /usr/share/java/postgresql.jar ] || missing="$$missing libpostgresql-jdbc-java"; \
	  command -v go >/dev/null || missing="$$missing golang-go"; \
	  command -v node >/dev/null || missing="$$missing nodejs"; \
	  command -v npm >/dev/null || missing="$$missing npm"; \
	  [ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	  ls /usr/lib/*/faketime/libfaketimeMT.so.1 >/dev/null 2>&1 || missing="$$missing libfaketime"; \
	  if [ -n "$$missing" ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  fi; \
	fi

# node-postgres for the client-stack tests, project-local (never global): .venv/node/node_modules/pg
NODE_PG := $(VENV)/node/node_modules/pg/package.json
$(NODE_PG): $(BIN)/python | test-deps
	npm install --silent --no-audit --no-fund --prefix $(VENV)/node pg@8.23.1

# Most tests wait on servers (sshd, PostgreSQL, reloads, handshakes), so more workers than cores pay:
# 4 on a 2-core machine. `make test WORKERS=0` runs everything in one process.
# The tests start the CLI hundreds of times: bytecode compiled once up front saves a third of each
# start where PYTHONDONTWRITEBYTECODE is set (Python then never caches it itself).
WORKERS ?= 4
test: test-deps $(STAMP) $(NODE_PG)
	$(BIN)/lint-imports
	$(BIN)/python -m compileall -q core tui tests >/dev/null
	$(BIN)/python -m pytest -q -p no:cacheprovider -n $(WORKERS) --dist worksteal

demo: system-deps $(STAMP)
	$(BIN)/certrotate demo

# Regenerate screenshots/ from the real app (PNG needs cairosvg and Debian's fonts-firacode).
screenshots: system-deps $(STAMP)
	@if [ "$$(id -u)" = 0 ] && ! dpkg -s fonts-firacode >/dev/null 2>&1; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-firacode >/dev/null; fi
	$(BIN)/pip install -q -e '.[test,screenshots]'
	$(BIN)/python screenshots/make_screenshots.py
	$(BIN)/python screenshots/make_ui_certificate_screenshots.py
	$(BIN)/python screenshots/make_advanced_screenshots.py

clean:
	rm -rf $(VENV) build *.egg-info
