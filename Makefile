# blockscope: the two commands a new machine needs are `make demo` and `make test`.
SWIFT ?= swift
BIN := .build/debug/blockscope

.PHONY: deps build release demo test fuzz fuzz-campaign clean vm-deps vm-test vm-test-reduced vhost-test vhost-test-reduced vhost-reconnect-test

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

# Opt-in: boots a Linux guest (TCG) from a QCOW2 over a RAW backing file served by
# `blockscope serve`; the guest reads, writes with O_DIRECT, syncs, powers off; the host checks.
# About 30-40 s on a 2-core machine. vm-test-reduced is the same run with a 64 KiB payload (CI).
vm-deps:
	@bash scripts/install-deps.sh vm

vm-test: build vm-deps
	@bash scripts/vm-test.sh

vm-test-reduced: build vm-deps
	@VM_TEST_REDUCED=1 bash scripts/vm-test.sh

# Opt-in: two TCG guests in turn on `blockscope serve --vhost-user` (2 queues, shared memfd
# memory): both vCPUs write with O_DIRECT, discard, zero, reboot; the host checks with
# qemu-img. About 55 s; vhost-test-reduced (CI) writes 256 KiB per vCPU instead of 4 MiB.
# VHOST_BACKEND=qsd runs the same checks against qemu-storage-daemon.
vhost-test: build vm-deps
	@bash scripts/vhost-test.sh

vhost-test-reduced: build vm-deps
	@VHOST_TEST_REDUCED=1 bash scripts/vhost-test.sh

# Opt-in: the server SIGKILLed 3 times while a TCG guest writes (QEMU reconnects with
# reconnect=1 and hands the INFLIGHT_SHMFD region back); the guest's writes complete and the
# host reads them with qemu-img. About 40 s.
vhost-reconnect-test: build vm-deps
	@bash scripts/vhost-reconnect-test.sh

# Builds the libFuzzer targets (Fuzz/, into .build-fuzz, sanitizers on) and runs each for
# FUZZ_SECONDS, one line per target: `fuzz TARGET: N execs, C crashes`. Non-zero on any
# crash; crashing inputs stay in fuzz-crashes/TARGET/. CI: .ci/fuzz-smoke. See docs/FUZZING.md.
FUZZ_SECONDS ?= 60
fuzz: deps
	@FUZZ_SECONDS=$(FUZZ_SECONDS) bash scripts/fuzz/run.sh

# A campaign that accumulates: every target in turn at nice 19 for a share of FUZZ_HOURS,
# from the committed corpus (Fuzz/corpus/), merged back, one row per target appended to
# docs/FUZZING.md's table. FUZZ_END=HH:MM (UTC) ends it earlier. See docs/FUZZING.md.
FUZZ_HOURS ?= 1
fuzz-campaign: deps
	@FUZZ_END=$(FUZZ_END) FUZZ_GOAL=$(FUZZ_GOAL) bash scripts/fuzz/campaign.sh $(FUZZ_HOURS)

clean:
	rm -rf .build .build-fuzz
