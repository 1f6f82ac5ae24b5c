# blockscope: the two commands a new machine needs are `make demo` and `make test`.
SWIFT ?= swift
BIN := .build/debug/blockscope

.PHONY: deps build release demo test clean

deps:
	@bash scripts/install-deps.sh

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release

# Opens blockscope on a temporary copy of a bundled demo image (the bundled images are never modified).
demo: build
	@bash scripts/demo.sh

# Builds everything (the end-to-end tests run the built binary) and runs the whole suite.
test: build
	$(SWIFT) test

clean:
	rm -rf .build
