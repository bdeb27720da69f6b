# Build, test and lint the three binaries. `make help` lists the targets.

GO        ?= go
BIN       ?= bin
# A count (Nx), not a duration: with a duration Go 1.26's fuzz coordinator can
# report a spurious "context deadline exceeded" as the time runs out
# (go.dev/issue/75804, fixed in Go 1.27).
FUZZTIME  ?= 500000x
ROWS      ?=
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT    ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
DATE      ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS   := -s -w \
	-X github.com/oma-enroll/oma-enroll/internal/cli/cmdutil.Version=$(VERSION) \
	-X github.com/oma-enroll/oma-enroll/internal/cli/cmdutil.Commit=$(COMMIT) \
	-X github.com/oma-enroll/oma-enroll/internal/cli/cmdutil.Date=$(DATE)

# Installation (make install) and release (make release).
PREFIX    ?= /usr/local
DESTDIR   ?=
MAN       ?= man
DIST      ?= dist
RELEASE_PLATFORMS ?= linux/amd64 linux/arm64
BINARIES  := oma-server omactl vma-enroll
GENDOCS    = $(GO) run -ldflags '$(LDFLAGS)' ./internal/cli/docgen/gendocs

# Fuzz targets as package:Target.
FUZZ := \
	./internal/enroll:FuzzNormalizePairingCode \
	./internal/enroll:FuzzSignedMessage \
	./internal/sshkey:FuzzParseAuthorizedKey \
	./internal/labels:FuzzParseSelector \
	./internal/server:FuzzPublicRequest \
	./internal/server:FuzzAdminRequest \
	./internal/cli/omactl:FuzzWriteRawJSON

.PHONY: all build test lint fuzz run bench bench-smoke clean help completions docs depaware man install release

all: lint test build

build: ## build oma-server, omactl and vma-enroll into bin/
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/...

test: ## run every test with the race detector (MariaDB tests need OMA_TEST_MYSQL_DSN; .ci/run sets it)
	$(GO) test -race -count=1 ./...

lint: ## check formatting, go.mod and go.sum (go mod tidy), run go vet and staticcheck (pinned in go.mod's tool directive)
	@unformatted="$$(gofmt -l .)"; \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	@$(GO) mod tidy -diff || { echo "go.mod/go.sum are not tidy: run go mod tidy"; exit 1; }
	$(GO) vet ./...
	$(GO) tool staticcheck ./...

fuzz: ## run each fuzz target for FUZZTIME executions (500000x)
	@set -e; for t in $(FUZZ); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "fuzz $$name ($$pkg) for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$name$$" -fuzztime $(FUZZTIME) $$pkg; \
	done

# make run's addresses. The defaults bind loopback only, which is what the
# Quick start needs; to let VMAs on other machines enroll, e.g.
#   make run PUBLIC_LISTEN=:8443 PUBLIC_HOST=oma.lab.example
DEV_DIR       ?= .oma-dev
ADMIN_LISTEN  ?= 127.0.0.1:8082
PUBLIC_LISTEN ?= 127.0.0.1:8443
PUBLIC_HOST   ?= 127.0.0.1

run: build ## run a development server: SQLite in ./.oma-dev, admin on ADMIN_LISTEN (127.0.0.1:8082), public on PUBLIC_LISTEN (127.0.0.1:8443)
	@echo "oma-server: admin API and web UI on http://$(ADMIN_LISTEN), enrollment API (HTTPS + SSH tunnels) on $(PUBLIC_LISTEN)"
	@echo "(change them with make run ADMIN_LISTEN=... PUBLIC_LISTEN=... PUBLIC_HOST=...)"
	@echo "In another terminal:"
	@echo "  export OMACTL_SERVER=http://$(ADMIN_LISTEN) OMACTL_TOKEN_FILE=$(DEV_DIR)/admin.token"
	@echo "  $(BIN)/omactl pairing-code"
	@echo "  $(BIN)/omactl pending"
	@echo "(the admin token is created in $(DEV_DIR)/admin.token on first start)"
	$(BIN)/oma-server serve --data-dir $(DEV_DIR) --db-driver sqlite \
		--admin-listen $(ADMIN_LISTEN) --public-listen $(PUBLIC_LISTEN) --public-host $(PUBLIC_HOST)

bench: ## measure the server against its floor and its peers (prints a markdown table; minutes; ROWS=5 or ROWS=2,7 for some rows)
	@dsn="$(OMA_TEST_MYSQL_DSN)"; \
	if [ -z "$$dsn" ]; then dsn="$$(.ci/bench-deps)" || { dsn=; echo "make bench: MariaDB could not be started (see above): measuring SQLite only; set OMA_TEST_MYSQL_DSN to a MariaDB root DSN for the rest" >&2; }; fi; \
	OMA_TEST_MYSQL_DSN="$$dsn" $(GO) run ./internal/bench/omabench -rows "$(ROWS)"

bench-smoke: ## a short run that checks the benchmark harness works
	$(GO) run ./internal/bench/omabench -smoke

completions: ## regenerate the shell completions in completions/ (committed; a test checks them)
	$(GENDOCS) completions completions

docs: completions ## regenerate completions/ and docs/configuration.md (committed; tests check them)
	$(GENDOCS) config docs/configuration.md

depaware: ## regenerate cmd/*/depaware.txt, the packages each binary links (committed; a test checks them)
	$(GO) test -count=1 ./internal/depaware -run '^TestDepaware$$' -update

man: ## write the man pages into man/ (not committed)
	rm -rf $(MAN)
	$(GENDOCS) man $(MAN)

install: build man ## install binaries, completions, man pages and the systemd unit into $(DESTDIR)$(PREFIX)
	install -d $(DESTDIR)$(PREFIX)/bin \
		$(DESTDIR)$(PREFIX)/share/bash-completion/completions \
		$(DESTDIR)$(PREFIX)/share/zsh/site-functions \
		$(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d \
		$(DESTDIR)$(PREFIX)/share/man/man1 \
		$(DESTDIR)$(PREFIX)/lib/systemd/system
	@set -e; for b in $(BINARIES); do \
		install -m 0755 $(BIN)/$$b $(DESTDIR)$(PREFIX)/bin/$$b; \
		install -m 0644 completions/bash/$$b $(DESTDIR)$(PREFIX)/share/bash-completion/completions/$$b; \
		install -m 0644 completions/zsh/_$$b $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_$$b; \
		install -m 0644 completions/fish/$$b.fish $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/$$b.fish; \
	done
	install -m 0644 $(MAN)/*.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	$(BIN)/oma-server systemd-unit --binary $(PREFIX)/bin/oma-server > $(DESTDIR)$(PREFIX)/lib/systemd/system/oma-server.service
	chmod 0644 $(DESTDIR)$(PREFIX)/lib/systemd/system/oma-server.service

release: ## static binaries for linux/amd64 and linux/arm64 with version info, as tarballs with SHA256SUMS, into dist/
	rm -rf $(DIST)
	@set -e; for p in $(RELEASE_PLATFORMS); do \
		os=$${p%/*}; arch=$${p#*/}; name=oma-enroll-$(VERSION)-$$os-$$arch; \
		echo "build $(DIST)/$$name"; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(DIST)/$$name/ ./cmd/...; \
		cp -R completions docs LICENSE README.md SECURITY.md $(DIST)/$$name/; \
		tar -C $(DIST) -czf $(DIST)/$$name.tar.gz $$name; \
	done
	cd $(DIST) && sha256sum *.tar.gz > SHA256SUMS

clean: ## remove build outputs
	rm -rf $(BIN) $(DIST) $(MAN)

help: ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'
