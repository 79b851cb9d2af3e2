# minirunc: the two entry points are `make demo` (main job) and `make test` (the suite).
# Everything a fresh Debian 12 machine needs is installed from here.

PYTHON_REAL := $(shell python3 -c 'import sys; print(sys.executable)' 2>/dev/null)
VENV        := .venv
PY          := $(VENV)/bin/python
APT_PACKAGES := busybox-static libseccomp-dev gcc make runc crun hyperfine iproute2
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

$(STAMP)/venv: pyproject.toml | $(STAMP)/apt
	test -x $(PY) || $(PYTHON_REAL) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check cffi pytest
	touch $@

deps: $(STAMP)/apt $(STAMP)/venv

NATIVE_SRC := $(wildcard native/*.c native/*.h native/*.py)
$(STAMP)/native: $(NATIVE_SRC) $(STAMP)/venv
	$(PY) native/build_native.py
	touch $@

# Bytecode ahead of time: PYTHONDONTWRITEBYTECODE may be set, and compiling on every
# start would cost each container ~40 ms.
bytecode: $(STAMP)/venv
	$(PY) -m compileall -q src >/dev/null

native: $(STAMP)/native bytecode

# Main job: build what is needed and run a busybox bundle with minirunc.
demo: native
	$(PY) tests/make_bundle.py build/demo-bundle --args "sh" "-c" "echo hello from \$$(hostname), pid \$$\$$; cat /proc/self/uid_map; ls /"
	cd build/demo-bundle && PYTHONPATH=$(CURDIR)/src $(CURDIR)/$(PY) -m minirunc

test: native
	$(PY) -m pytest -q tests

unit: $(STAMP)/venv
	$(PY) -m pytest -q tests/test_config.py tests/test_plan.py tests/test_spec.py

clean:
	rm -rf build/native build/.stamps src/minirunc/_native*.so build/demo-bundle
