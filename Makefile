# iotpay: `make test` sets up what the tests need and runs every test.
GO ?= go
PKGS := ./...

.PHONY: test setup check demo build fuzz

test: setup check
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

setup:
	@bash scripts/setup.sh

check:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet $(PKGS)

build:
	$(GO) build -o bin/ ./cmd/...

demo:
	$(GO) run ./cmd/iotpay demo

# Short fuzzing of every decoder; FUZZTIME=5m for a longer run. Minimizing
# a new input is bounded (FUZZMINTIME, go's default 60s): with a large seed
# and a costly target (FuzzEnrollment verifies certificates) it would
# otherwise take the whole of a short run.
FUZZTIME ?= 20s
FUZZMINTIME ?= 3s
# Every package with a Fuzz target, found rather than listed.
FUZZPKGS ?= $(shell grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u)
fuzz:
	@for p in $(FUZZPKGS); do for t in $$($(GO) test $$p -list 'Fuzz.*' | grep ^Fuzz); do \
		$(GO) test $$p -run XXX -fuzz "^$$t$$" -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINTIME) || exit 1; done; done
