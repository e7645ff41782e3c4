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

.PHONY: bootstrap build install testnet test fmt clippy bench sim

# The Debian packages the build needs, each installed only when missing: libclang-dev for the
# rocksdb crate's bindgen, g++ for RocksDB itself.
bootstrap:
	@missing=""; \
	command -v c++ >/dev/null 2>&1 || missing="$$missing g++"; \
	ls /usr/lib/llvm-*/lib/libclang.so* /usr/lib/*/libclang*.so* >/dev/null 2>&1 \
	  || [ -n "$$LIBCLANG_PATH" ] || missing="$$missing libclang-dev"; \
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
test: bootstrap fmt clippy build
	$(CARGO) test $(CARGO_FLAGS) --workspace
	$(CAIRN) sim hotstuff --seeds 2000 --faults all
	$(CAIRN) sim pow --seeds 500

# The long simulation run; its figures are in benches/RESULTS.md.
sim: build
	$(CAIRN) sim hotstuff --seeds 100000 --faults all

bench: bootstrap
	$(CARGO) bench --locked --profile release -p cairn-benches -p cairn-oracle -p cairn-consensus
