# sesame — build, test, fuzz and benchmark.
GO        ?= go
PREFIX    ?= /usr/local
# From git tags (scripts/version.sh): 1.2.3, 1.2.3+4.gabc1234 after a tag,
# 0.0.0+gitabc1234 without one; dpkg and rpm accept and order them all.
VERSION   ?= $(shell sh scripts/version.sh)
# A count, not a duration: with a duration, Go 1.26's fuzz coordinator can
# report "context deadline exceeded" at the boundary although nothing failed
# (go.dev/issue/75804, fixed in Go 1.27). 200000 runs take 5-45 s a target.
FUZZTIME  ?= 200000x
LDFLAGS   := -s -w -X main.version=$(VERSION)

# runtime/secret (Go 1.26, linux/amd64 and arm64) erases the stack, registers
# and heap allocations of key parsing and signing once they are unreachable,
# which is what lets a locked agent hold no plaintext key material. Without it
# Go leaves copies in freed memory. Every build and test uses it.
export GOEXPERIMENT = runtimesecret

# On Linux sesame is a static binary without cgo: it starts about a
# millisecond sooner (no dynamic loader, no libc), which is most of the
# start-up gap to MIT kinit. User names still come from NSS (internal/osuser
# asks getent when /etc/passwd does not know the uid) and host names from
# /etc/hosts and DNS. macOS keeps cgo: its Keychain backend needs it.
ifeq ($(shell uname -s),Linux)
export CGO_ENABLED = 0
endif

.PHONY: all build install deps test unit race openssh-regress fuzz bench demo vet no-binaries clean man dist install-test

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/sesame ./cmd/sesame

# sudo only when the target directory (or the nearest one that exists) is
# not writable: root, or a PREFIX/DESTDIR of your own, needs none.
SUDO ?= $(shell d='$(DESTDIR)$(PREFIX)/bin'; while [ ! -e "$$d" ]; do d=$$(dirname "$$d"); done; [ -w "$$d" ] || echo sudo)

install: build
	$(SUDO) install -D -m 0755 bin/sesame $(DESTDIR)$(PREFIX)/bin/sesame

# The Debian packages the tests drive; asks for sudo only when not root.
deps:
	bash scripts/install-deps.sh

# A compiled program committed by mistake (a go test -c output, a build)
# fails the build: the repository holds sources only.
no-binaries:
	@bash scripts/check-no-binaries.sh

vet: no-binaries
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet ./...
	$(GO) vet -tags mangen ./cmd/sesame

# The whole suite: static checks, every test (real KDC, sshd, ssh, ssh-add),
# OpenSSH's own agent regression tests against sesame agent, each fuzz
# target for FUZZTIME, then the .deb installed, used and removed.
test: vet unit race openssh-regress fuzz install-test

# Under CI the security-key tests must not skip: build OpenSSH's sk-dummy
# provider first (scripts/openssh-regress.sh caches it) and point them at it.
unit:
	$(if $(CI),SESAME_SK_DUMMY=$$(bash scripts/openssh-regress.sh --print-sk-dummy) )$(GO) test -count=1 -parallel 8 -timeout 30m ./...

# OpenSSH's own agent regression tests (regress/agent*.sh, cert-file,
# hostkey-agent, sshsig from Debian's openssh source package) against
# `sesame agent`; ARGS=--baseline runs them against stock ssh-agent.
openssh-regress: build
	bash scripts/openssh-regress.sh $(ARGS)

# The concurrency tests of the agent and the lock under the race detector
# (which needs cgo): signatures racing lock/unlock, connection limits.
race:
	CGO_ENABLED=1 $(GO) test -count=1 -race -run 'Race|Stress|InFlight|ConnectionRoom|IdleConnections|Backoff|StoreGuesses' ./agent/ ./lock/

# Run every Fuzz* function for a bounded time. Go allows one fuzz target per
# invocation, so list them per package first.
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "fuzz $$pkg $$f ($(FUZZTIME))"; \
	    $(GO) test -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

# Side by side with the peers (MIT kinit, OpenSSH ssh-agent) in one run;
# prints ratios. Needs the same packages as the tests.
bench: build
	$(GO) run ./internal/bench

demo: build
	$(GO) run ./internal/demo

# Manual pages from the command tree (cobra's generator, cmd/sesame/man.go)
# into dist/man; `man -l dist/man/sesame-kinit.1` reads one.
man:
	VERSION=$(VERSION) bash scripts/dist.sh man

# Static binaries for linux and darwin (amd64, arm64) as tarballs, and a
# .deb and an .rpm per Linux architecture (nfpm), under dist/.
dist:
	VERSION=$(VERSION) bash scripts/dist.sh

# The .deb for this machine built, linted, installed with apt-get, its
# /usr/bin/sesame run against the test bed (MIT KDC, ssh-add), its page and
# completion found, and removed again with dpkg -r; the .rpm's file list
# checked. Needs root or sudo; about half a minute.
install-test:
	bash scripts/install-test.sh

clean:
	rm -rf bin dist
