# Build, test and lint the three binaries. `make help` lists the targets.

GO        ?= go
BIN       ?= bin
FUZZTIME  ?= 30s
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT    ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
DATE      ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS   := -s -w \
	-X github.com/oma-enroll/oma-enroll/internal/cli/cmdutil.Version=$(VERSION) \
	-X github.com/oma-enroll/oma-enroll/internal/cli/cmdutil.Commit=$(COMMIT) \
	-X github.com/oma-enroll/oma-enroll/internal/cli/cmdutil.Date=$(DATE)

# Fuzz targets as package:Target.
FUZZ := \
	./internal/enroll:FuzzNormalizePairingCode \
	./internal/sshkey:FuzzParseAuthorizedKey

.PHONY: all build test lint fuzz run bench bench-smoke clean help

all: lint test build

build: ## build oma-server, omactl and vma-enroll into bin/
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/...

test: ## run every test with the race detector (MariaDB tests need OMA_TEST_MYSQL_DSN; .ci/run sets it)
	$(GO) test -race -count=1 ./...

lint: ## check formatting and run go vet
	@unformatted="$$(gofmt -l .)"; \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...

fuzz: ## run each fuzz target for FUZZTIME (30s)
	@set -e; for t in $(FUZZ); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "fuzz $$name ($$pkg) for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$name$$" -fuzztime $(FUZZTIME) $$pkg; \
	done

DEV_DIR ?= .oma-dev

run: build ## run a development server: SQLite in ./.oma-dev, public :8443, admin 127.0.0.1:8082
	@echo "oma-server: admin API on http://127.0.0.1:8082, enrollment API (HTTPS + SSH tunnels) on :8443"
	@echo "In another terminal:"
	@echo "  $(BIN)/omactl --token-file $(DEV_DIR)/admin.token pairing-code"
	@echo "  $(BIN)/omactl --token-file $(DEV_DIR)/admin.token pending"
	@echo "(the admin token is created in $(DEV_DIR)/admin.token on first start)"
	$(BIN)/oma-server serve --data-dir $(DEV_DIR) --db-driver sqlite \
		--admin-listen 127.0.0.1:8082 --public-listen :8443 --public-host 127.0.0.1

bench: ## measure the server against its floor and its peers (prints a markdown table; minutes)
	OMA_TEST_MYSQL_DSN="$(OMA_TEST_MYSQL_DSN)" $(GO) run ./internal/bench/omabench

bench-smoke: ## a short run that checks the benchmark harness works
	$(GO) run ./internal/bench/omabench -smoke

clean: ## remove build outputs
	rm -rf $(BIN) dist

help: ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-8s %s\n", $$1, $$2}'
