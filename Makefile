# The commands the README gives. Everything builds in the release profile: RocksDB's C++ build
# is the slow part (about 23 minutes cold on 2 cores) and is shared by every target below
# only if they all use the same profile.

CARGO       ?= cargo
CARGO_FLAGS ?= --release --locked
TARGET_DIR  ?= $(or $(CARGO_TARGET_DIR),target)
CAIRN       := $(TARGET_DIR)/release/cairn
# Where `make install` puts cairn: $(BINDIR)/cairn, by default ~/.cargo/bin, which rustup's
# setup puts on the PATH. `make install PREFIX=/usr/local` (as root) for every user.
PREFIX      ?= $(HOME)/.cargo
BINDIR      ?= $(PREFIX)/bin

.PHONY: bootstrap build old-binary install testnet test fmt clippy bench sim chaos fuzz fuzz-seeds

# The Debian packages the build and tests need, each installed only when missing: libclang-dev
# for the rocksdb crate's bindgen, g++ for RocksDB itself, faketime for the nemesis's clock
# skew (tests/src/nemesis).
bootstrap:
	@missing=""; \
	command -v c++ >/dev/null 2>&1 || missing="$$missing g++"; \
	ls /usr/lib/llvm-*/lib/libclang.so* /usr/lib/*/libclang*.so* >/dev/null 2>&1 \
	  || [ -n "$$LIBCLANG_PATH" ] || missing="$$missing libclang-dev"; \
	ls /usr/lib/*/faketime/libfaketimeMT.so.1 >/dev/null 2>&1 || missing="$$missing faketime"; \
	if ! command -v $(CARGO) >/dev/null 2>&1; then \
	  echo "cargo is missing: install Rust with  curl https://sh.rustup.rs -sSf | sh"; exit 1; \
	fi; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "bootstrap: installing$$missing"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null \
	      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; }; \
	  else \
	    echo "bootstrap: missing$$missing. Run:  sudo apt-get install -y$$missing"; exit 1; \
	  fi; \
	fi

build: bootstrap
	$(CARGO) build $(CARGO_FLAGS) -p cairn-cli

# The binary of the release before the newest upgrade, for the mixed-version tests
# (tests/tests/e2e_upgrades.rs): this tree built with the feature omit-newest-upgrade in the
# same target dir (so RocksDB is not compiled again), copied aside; then the real binary is
# put back in its place.
old-binary: build
	$(CARGO) build $(CARGO_FLAGS) -p cairn-cli --features omit-newest-upgrade
	cp $(CAIRN) $(CAIRN)-without-newest-upgrade
	$(CARGO) build $(CARGO_FLAGS) -p cairn-cli
	@! cmp -s $(CAIRN) $(CAIRN)-without-newest-upgrade \
	  || { echo "old-binary: $(CAIRN) is still the old binary"; exit 1; }

# Copies the release binary `build` made, so nothing is compiled again (cargo install would
# rebuild RocksDB in a target dir of its own).
install: build
	install -d "$(BINDIR)"
	install -m 755 "$(CAIRN)" "$(BINDIR)/cairn"
	@found="$$(command -v cairn 2>/dev/null)"; \
	if [ "$$found" = "$(BINDIR)/cairn" ]; then \
	  echo "installed $(BINDIR)/cairn"; \
	elif [ -n "$$found" ]; then \
	  echo "installed $(BINDIR)/cairn, but the PATH finds $$found first; put $(BINDIR) before it"; \
	else \
	  echo "installed $(BINDIR)/cairn; $(BINDIR) is not on the PATH: add it with  export PATH=\"$(BINDIR):\$$PATH\""; \
	fi

testnet: build
	$(CAIRN) testnet

fmt:
	$(CARGO) fmt --all -- --check

clippy: bootstrap
	$(CARGO) clippy $(CARGO_FLAGS) --workspace --all-targets -- -D warnings

# The end-to-end tests run the real `cairn` binary, so it is built first.
test: bootstrap fmt clippy build old-binary
	$(CARGO) test $(CARGO_FLAGS) --workspace
	$(CAIRN) sim hotstuff --seeds 2000 --faults all
	$(CAIRN) sim hotstuff --seeds 2000 --faults all --leader-election round-robin
	$(CAIRN) sim pbft --seeds 2000 --faults all
	$(CAIRN) sim pbft --seeds 2000 --faults all --leader-election round-robin
	$(CAIRN) sim pow --seeds 500

# The long simulation run; its figures are in benches/RESULTS.md.
sim: build
	$(CAIRN) sim hotstuff --seeds 100000 --faults all
	$(CAIRN) sim pbft --seeds 100000 --faults all

# The nemesis on real processes (tests/src/nemesis; README "Chaos testing"): a seeded schedule
# of partitions, one-way loss, delay, bandwidth caps, connection resets, kill -9, SIGSTOP,
# restarts and clock skew against a local testnet under client load, then every store checked
# against the clients' history. `make chaos DURATION=1800 VALIDATORS=7`; SEED=N reruns a
# schedule (the report prints the line). `make test` runs two minutes of it.
VALIDATORS ?= 4
DURATION   ?= 120
SEED       ?=
chaos: build
	$(CARGO) build $(CARGO_FLAGS) -p cairn-tests --bin chaos
	$(TARGET_DIR)/release/chaos --validators $(VALIDATORS) --seconds $(DURATION) $(if $(SEED),--seed $(SEED))

bench: bootstrap
	$(CARGO) bench --locked --profile release -p cairn-benches -p cairn-oracle -p cairn-consensus

# Fuzzing with cargo-fuzz (libFuzzer, on the nightly toolchain; the node still builds with
# stable). fuzz/ is a crate of its own, outside the workspace: each target is one line around
# a check in tests/src/fuzz.rs, which `make test` replays on every committed input
# (tests/tests/fuzz_corpora.rs). Each target runs FUZZ_SECONDS from the committed seeds and
# regression inputs, writing what it finds to $(FUZZ_TARGET_DIR)/corpus/<target>, never to
# the committed corpus. An allocation over malloc_limit_mb is a crash: every decoder bounds
# what it allocates well below it. RocksDB's C++ library (not instrumented either way) is
# taken from the newest release build in $(TARGET_DIR) when there is one; without it the
# first build compiles RocksDB again (tens of minutes, an hour on a loaded machine).
FUZZ_SECONDS    ?= 60
FUZZ_TARGET_DIR ?= $(abspath target/fuzz)
FUZZ_TARGETS    ?= transaction block consensus_message sync_request sync_response gossip_batch \
                   handshake framing rpc_body genesis_toml config_toml key_file
FUZZ_BUILD      ?= -O -a
FUZZ_LIMITS     ?= -rss_limit_mb=2048 -malloc_limit_mb=512
# More libFuzzer flags, e.g. FUZZ_ARGS=-runs=10000000 for a run of a set length.
FUZZ_ARGS       ?=
FUZZ_ROCKSDB_LIB_DIR ?= $(abspath $(shell ls -dt $(TARGET_DIR)/release/build/librocksdb-sys-*/out/librocksdb.a \
                          2>/dev/null | head -1 | xargs -r dirname))
FUZZ_ENV        := CARGO_TARGET_DIR=$(FUZZ_TARGET_DIR) \
                   $(if $(FUZZ_ROCKSDB_LIB_DIR),ROCKSDB_LIB_DIR=$(FUZZ_ROCKSDB_LIB_DIR) ROCKSDB_STATIC=1)

fuzz:
	@command -v cargo-fuzz >/dev/null 2>&1 || $(CARGO) install cargo-fuzz --locked
	@$(CARGO) +nightly --version >/dev/null 2>&1 \
	  || { echo "fuzz: the nightly toolchain is missing: rustup toolchain install nightly"; exit 1; }
	cd fuzz && $(FUZZ_ENV) $(CARGO) +nightly fuzz build $(FUZZ_BUILD)
	@mkdir -p $(FUZZ_TARGET_DIR)/logs
	@failed=""; \
	for t in $(FUZZ_TARGETS); do \
	  mkdir -p $(FUZZ_TARGET_DIR)/corpus/$$t; \
	  echo "fuzz: $$t for $(FUZZ_SECONDS) s"; \
	  ( cd fuzz && $(FUZZ_ENV) LSAN_OPTIONS=suppressions=$(abspath fuzz/lsan.supp) \
	      $(CARGO) +nightly fuzz run $(FUZZ_BUILD) $$t \
	      $(FUZZ_TARGET_DIR)/corpus/$$t corpus/$$t $$( [ -d regressions/$$t ] && echo regressions/$$t ) \
	      -- -max_total_time=$(FUZZ_SECONDS) $(FUZZ_LIMITS) $(FUZZ_ARGS) \
	  ) > $(FUZZ_TARGET_DIR)/logs/$$t.log 2>&1 || failed="$$failed $$t"; \
	done; \
	printf '%-18s %12s %8s %7s %7s %7s  %s\n' target executions exec/s cov ft corpus result; \
	for t in $(FUZZ_TARGETS); do \
	  log=$(FUZZ_TARGET_DIR)/logs/$$t.log; \
	  last=$$(grep -E '^#[0-9]+' $$log | tail -1); \
	  result=ok; case " $$failed " in *" $$t "*) result="CRASH (see $$log and fuzz/artifacts/$$t)";; esac; \
	  echo "$$last" | awk -v t=$$t -v r="$$result" '{ \
	    n=$$1; sub("#","",n); cov="-"; ft="-"; corp="-"; eps="-"; \
	    for (i=1;i<=NF;i++) { if ($$i=="cov:") cov=$$(i+1); if ($$i=="ft:") ft=$$(i+1); \
	      if ($$i=="corp:") corp=$$(i+1); if ($$i=="exec/s:") eps=$$(i+1) } \
	    printf "%-18s %12s %8s %7s %7s %7s  %s\n", t, n, eps, cov, ft, corp, r }'; \
	done; \
	[ -z "$$failed" ] || { echo "fuzz: crashes in:$$failed"; exit 1; }

# Writes the seed inputs (real encodings, tests/src/fuzz.rs) to fuzz/corpus/.
fuzz-seeds:
	CAIRN_WRITE_FUZZ_SEEDS=1 $(CARGO) test $(CARGO_FLAGS) --workspace --test fuzz_corpora
