# minirunc: the two entry points are `make demo` (main job) and `make test` (the suite).
# Everything a fresh Debian 12 machine needs is installed from here.

PYTHON_REAL := $(shell python3 -c 'import sys; print(sys.executable)' 2>/dev/null)
VENV        := .venv
PY          := $(VENV)/bin/python
APT_PACKAGES := busybox-static libseccomp-dev gcc make runc crun hyperfine iproute2 strace gdb
STAMP       := build/.stamps

.PHONY: all deps venv native bytecode demo test unit clean

all: native

$(STAMP)/apt:
	mkdir -p $(STAMP)
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages: $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi
	touch $@

$(STAMP)/venv: requirements.txt | $(STAMP)/apt
	test -x $(PY) || $(PYTHON_REAL) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	touch $@

deps: $(STAMP)/apt $(STAMP)/venv

NATIVE_SRC := $(wildcard native/*.c native/*.h native/*.py)
$(STAMP)/native: $(NATIVE_SRC) $(STAMP)/venv $(STAMP)/build-tools
	$(PY) native/build_native.py
	touch $@

# Bytecode ahead of time: PYTHONDONTWRITEBYTECODE may be set, and compiling on every
# start would cost each container ~40 ms.
bytecode: $(STAMP)/venv
	@printf 'COMMIT = "%s"\n' "$$(git rev-parse HEAD 2>/dev/null || echo unknown)" > src/minirunc/_commit.py
	$(PY) -m compileall -q src >/dev/null

native: $(STAMP)/native bytecode

# Main job: build the single binary and run a busybox bundle with it, the 2015 way:
# cd into the bundle and type `minirunc`.
demo: binary
	$(PY) tests/make_bundle.py build/demo-bundle --args "sh" "-c" "echo hello from \$$(hostname), pid \$$\$$; cat /proc/self/uid_map; ls /"
	cd build/demo-bundle && $(CURDIR)/dist/minirunc

# The whole suite: unit tests, real containers, the binaries and the QEMU host images.
# The real-container tests run three times: from source, then through each single binary.
CONTAINER_TESTS := tests/test_lifecycle.py tests/test_isolation.py tests/test_security.py \
	tests/test_bad_input.py tests/test_terminal.py tests/test_commands.py tests/test_cgroups.py \
	tests/test_exec.py tests/test_hooks.py tests/test_checkpoint.py tests/test_fidelity_cli.py \
	tests/test_clients.py tests/test_harm_config.py tests/test_harm_mounts.py \
	tests/test_harm_cgroups.py tests/test_harm_state.py tests/test_harm_foreground.py \
	tests/test_fidelity_mounts.py tests/test_bundle_convert.py tests/test_spec_flags.py \
	tests/test_check.py tests/test_import.py tests/test_faults.py tests/test_concurrency.py \
	tests/test_fuzz_config.py tests/test_clients_checkpoint.py tests/test_door.py \
	tests/test_exit.py tests/test_init_copy.py
# The core cases again as on kernels 4.14 and 5.4 (tests/oldkernel.py: every newer syscall
# fails with ENOSYS): 4.14 through the static binary (the one for small old hosts), 5.4
# through the glibc one.  tests/test_oldkernel.py (both releases) runs in the first pass.
OLDKERNEL_TESTS := tests/test_lifecycle.py tests/test_isolation.py tests/test_security.py \
	tests/test_exec.py tests/test_cgroups.py
test: native binary binary-static images criu clients $(STAMP)/bullseye-libc
	MINIRUNC_REQUIRE_BINARY=1 $(PY) -m pytest -q tests
	MINIRUNC_BIN=$(CURDIR)/dist/minirunc $(PY) -m pytest -q $(CONTAINER_TESTS)
	MINIRUNC_BIN=$(CURDIR)/dist/minirunc-static $(PY) -m pytest -q $(CONTAINER_TESTS)
	MINIRUNC_BIN=$(CURDIR)/dist/minirunc-static MINIRUNC_KERNEL=4.14 $(PY) -m pytest -q $(OLDKERNEL_TESTS)
	MINIRUNC_BIN=$(CURDIR)/dist/minirunc MINIRUNC_KERNEL=5.4 $(PY) -m pytest -q $(OLDKERNEL_TESTS)

unit: $(STAMP)/venv
	$(PY) -m pytest -q tests/test_config.py tests/test_plan.py tests/test_spec.py

clean:
	rm -rf build/native build/.stamps src/minirunc/_native*.so build/demo-bundle

# --- Single binaries (issues 3 and 9), one pipeline (build/binary.py --target), zig as the
# C toolchain: dist/minirunc needs glibc >= 2.17 and nothing else; dist/minirunc-static needs
# no C library at all (musl linked in). The first build of each compiles CPython (minutes).
.PHONY: binary binary-static bench
$(STAMP)/build-tools: build/requirements.txt $(STAMP)/venv
	$(PY) -m pip install -q --disable-pip-version-check -r build/requirements.txt
	touch $@

BINARY_INPUTS := $(shell find src/minirunc -name '*.py' 2>/dev/null) build/binary.py build/nuitka_builtins.py \
	build/exe_guard.c build/exe_guard.ld build/hot_functions.txt build/math_fixes.c native/door.c native/door.h
dist/minirunc: $(STAMP)/native $(STAMP)/build-tools $(BINARY_INPUTS)
	$(PY) build/binary.py --target gnu

# Nuitka runs on the gnu interpreter for the musl build too: never both builds at once.
dist/minirunc-static: $(STAMP)/native $(STAMP)/build-tools $(BINARY_INPUTS) | dist/minirunc
	$(PY) build/binary.py --target musl

binary: dist/minirunc

binary-static: dist/minirunc-static

# Debian 11's libc6 (glibc 2.31) for tests/test_portable.py, fetched with a private apt state
$(STAMP)/bullseye-libc: build/bullseye_libc.sh build/debian_apt.sh
	mkdir -p $(STAMP)
	sh build/bullseye_libc.sh
	touch $@

# The functions the hot commands call (traced through the gnu build), for the binary's layout
.PHONY: hot-functions
hot-functions: binary
	$(PY) build/hot_functions.py

# Side-by-side timings of minirunc (binary and source), runc and crun -> docs/benchmarks.md
bench: binary binary-static
	$(PY) build/bench.py

# ---- Issue 4: Busybox and Puppy-style test hosts (build/images/, busybox-image/) ----------
# `make images` builds the kernel cache, the hexo bundles and both hosts (dist/minirunc goes in
# when it exists); `make images-test` boots them in QEMU and runs tests/test_images.py;
# `make images-boot-busybox` / `images-boot-busybox-5.10` (Debian 11's kernel) /
# `images-boot-puppy` boot one host with its console on stdout.
IMAGE_APT_PACKAGES := busybox-static qemu-system-x86 squashfs-tools cpio binutils
IMAGE_PY := $(PY) build/images/imagebuild.py

.PHONY: images-deps images images-test images-boot-busybox images-boot-busybox-5.10 \
	images-boot-puppy images-clean

$(STAMP)/images-apt:
	mkdir -p $(STAMP)
	@missing=$$(for p in $(IMAGE_APT_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages: $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@command -v node >/dev/null && command -v npm >/dev/null || { echo "images: node and npm are needed (node >= 20.19)"; exit 1; }
	touch $@

$(STAMP)/images-venv: build/requirements.txt $(STAMP)/venv
	$(PY) -m pip install -q --disable-pip-version-check $$(grep -i '^plumbum' build/requirements.txt)
	touch $@

images-deps: $(STAMP)/images-apt $(STAMP)/images-venv

images: images-deps
	$(IMAGE_PY) all

images-test: images
	$(PY) -m pytest -q -s tests/test_images.py

images-boot-busybox: images
	$(PY) build/images/qemu_runner.py busybox

images-boot-busybox-5.10: images
	$(PY) build/images/qemu_runner.py busybox-5.10

images-boot-puppy: images
	$(PY) build/images/qemu_runner.py puppy

images-clean:
	rm -rf build/images/out

# --- CRIU for checkpoint/restore (issue 13): Debian 13's criu 4.1.1 (12's 3.17 fails on new
# kernels) with its libraries under build/criu/root, fetched with a private apt state and
# sources list (nothing is installed into the system); build/criu/criu runs it. Cached.
.PHONY: criu
build/criu/criu: build/criu.sh build/debian_apt.sh
	sh build/criu.sh build/criu
	build/criu/criu check 2>/dev/null | grep -q "Looks good" || { build/criu/criu check; exit 1; }

criu: build/criu/criu

# --- Real clients (issue 10): Debian's podman 4.3 and containerd 1.6 drive minirunc in
# tests/test_clients.py, each with a private root/config under a temp dir (nothing of the
# host's is used or left); the tests start and stop their own containerd.
CLIENT_APT_PACKAGES := podman containerd
.PHONY: clients
$(STAMP)/clients-apt:
	mkdir -p $(STAMP)
	@missing=$$(for p in $(CLIENT_APT_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages: $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	touch $@

clients: $(STAMP)/clients-apt
