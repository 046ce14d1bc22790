# eventrt — see README.md. Every target works on a fresh Debian machine with Go.
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
PKG      := github.com/eventrt/eventrt/internal/buildinfo
LDFLAGS  := -s -w -X $(PKG).Version=$(VERSION) -X $(PKG).Revision=$(REVISION)
# Same flags as the Dockerfile: static, reproducible paths.
BUILD    := CGO_ENABLED=0 go build -trimpath -buildvcs=false -ldflags "$(LDFLAGS)"

.PHONY: build test bench demo lint dashboards docs image clean

build: ## static binary in bin/eventrt
	$(BUILD) -o bin/eventrt ./cmd/eventrt

test: ## install redis-server etc. when missing, then gofmt, vet, staticcheck and go test -race
	./scripts/test.sh

bench: ## benchmarks, side by side with the legacy runtime (method: docs/performance.md)
	./scripts/bench.sh

demo: ## private redis-server + sample metrics + eventrt running the classic handler
	./scripts/demo.sh

lint:
	test -z "$$(gofmt -l $$(git ls-files '*.go'))"
	go vet ./...

dashboards: ## regenerate grafana/dashboards and the PrometheusRule from code
	go run ./grafana/gen
	go run ./deploy/gen

docs: ## regenerate docs/configuration.md from the settings table (a test checks it is current)
	go generate ./internal/config

image:
	docker build --build-arg VERSION=$(VERSION) --build-arg REVISION=$(REVISION) -t eventrt:$(VERSION) .

clean:
	rm -rf bin
