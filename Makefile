# robot_brain: one command each to install, test, lint, benchmark and demo.
#
# Everything installs into ./.venv from PyPI wheels (ROS 2 Kilted, no ROS install). Steps are
# keyed on content, not time: each writes a stamp in .venv/ whose name carries a hash of its
# inputs (requirements/*.txt; setup.py & the data files pip copies; msg/ & its build tool), so
# a second `make test` skips straight to the tests and any edit re-runs only its own step.
#
#   make install   venv + pinned requirements + `pip install -e .` (+ ament index links) + robot_brain_msgs
#   make test      ruff, then pytest over test/ (pytest's exit status is make's)
#   make demo      the demo command (DEMO_CMD)
#   make bench     every bench/*.py
#   make constraints   re-pin requirements/constraints.txt from the current .venv

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
VPY := $(VENV)/bin/python
PIP := $(VPY) -m pip
CONSTRAINTS := requirements/constraints.txt
REQUIREMENTS := requirements/base.txt requirements/robots.txt requirements/build.txt requirements/train.txt \
	requirements/test.txt
AMENT_ENV := AMENT_PREFIX_PATH=$(abspath $(VENV)) MUJOCO_GL=$${MUJOCO_GL:-egl}
PYTEST_ARGS ?=

# Hash of the named files/folders (paths and contents), 16 hex digits; missing paths count as empty.
content_hash = $(shell find $(1) -type f ! -name '*.pyc' ! -path '*/__pycache__/*' 2>/dev/null \
	| LC_ALL=C sort | xargs -r sha256sum | sha256sum | cut -c1-16)

DEPS_STAMP := $(VENV)/.stamp-deps-$(call content_hash,requirements)
PKG_STAMP := $(VENV)/.stamp-pkg-$(call content_hash,setup.py setup.cfg package.xml resource launch config tools/ament_package.py)
MSGS_STAMP := $(VENV)/.stamp-msgs-$(call content_hash,msg tools/build_interfaces.py)

# The main job: the whole brain on the simulated Panda (sim, perception, policy, controller).
DEMO_CMD ?= $(VENV)/bin/robot-brain demo --robot panda --episodes 10

.PHONY: help venv install system-deps test lint demo factory reliability bench constraints clean distclean

help:
	@echo "targets: venv install test lint demo factory reliability bench constraints clean distclean"

# --- install -------------------------------------------------------------------------------

$(VPY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

venv: $(VPY)

$(DEPS_STAMP): | $(VPY)
	rm -f $(VENV)/.stamp-deps-*
	$(PIP) install -c $(CONSTRAINTS) $(addprefix -r ,$(REQUIREMENTS))
	$(PIP) install --no-deps -c $(CONSTRAINTS) -r requirements/test-nodeps.txt
	$(PIP) install --no-deps -c $(CONSTRAINTS) -r requirements/robots-sweep.txt
	touch $@

# No build isolation: setuptools comes pinned from requirements/build.txt, and no index
# round trip is needed to re-install after an edit of setup.py or the data files.
# An editable install writes none of setup.py's data_files: tools/ament_package.py then links
# the ament index entry, share/robot_brain/{package.xml,launch,config} and
# lib/robot_brain/<executables> into the venv, where get_package_share_directory and
# launch_ros look (what colcon's install step does).
$(PKG_STAMP): $(DEPS_STAMP)
	rm -f $(VENV)/.stamp-pkg-*
	$(PIP) install --no-build-isolation --no-deps -c $(CONSTRAINTS) -e .
	$(VPY) tools/ament_package.py --prefix $(VENV)
	touch $@

$(MSGS_STAMP): $(DEPS_STAMP)
	rm -f $(VENV)/.stamp-msgs-*
	$(VPY) tools/build_interfaces.py --venv $(VENV)
	touch $@

install: $(PKG_STAMP) $(MSGS_STAMP)

# MuJoCo renders offscreen through EGL (Mesa's llvmpipe without a GPU). The Debian image has
# it; on a bare machine install it, but only when missing and only as root.
system-deps:
	@if ! ldconfig -p | grep -q 'libEGL_mesa\.so\.0'; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "installing Mesa EGL for MuJoCo offscreen rendering"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
				libegl1 libegl-mesa0 libgl1-mesa-dri libgbm1; \
		else \
			echo "warning: Mesa EGL (libegl-mesa0, libgl1-mesa-dri) is missing and this is not root:" \
				"MuJoCo rendering tests will fail" >&2; \
		fi; \
	fi

# --- use -----------------------------------------------------------------------------------

lint: $(DEPS_STAMP)
	$(VENV)/bin/ruff check .

# Lint first, but let lint errors not hide test results: pytest always runs, a pytest failure
# exits with pytest's own status, and otherwise a lint failure fails the target.
test: install system-deps
	@lint=0; echo "$(VENV)/bin/ruff check ."; $(VENV)/bin/ruff check . || lint=$$?; \
	echo "$(AMENT_ENV) $(VPY) -m pytest test $(PYTEST_ARGS)"; \
	$(AMENT_ENV) $(VPY) -m pytest test $(PYTEST_ARGS) || exit $$?; \
	if [ $$lint -ne 0 ]; then echo "make test: tests passed but ruff check failed" >&2; fi; \
	exit $$lint

demo: install system-deps
	$(AMENT_ENV) $(DEMO_CMD)

# The data factory end to end in the simulator (collect, export, train, evaluate): ~15 min on 2 cores.
FACTORY_CMD ?= $(VENV)/bin/robot-brain factory --out out/factory

factory: install system-deps
	$(AMENT_ENV) $(FACTORY_CMD)

# The fault-injection suite, then docs/reliability.md from its results.
reliability: install system-deps
	$(AMENT_ENV) $(VPY) -m pytest test/faults -q
	$(AMENT_ENV) $(VPY) tools/reliability_report.py

# Every bench/*.py except private helpers (_*.py), one after the other; the first failure stops.
bench: install system-deps
	@shopt -s nullglob; scripts=(bench/[!_]*.py); \
	if [ $${#scripts[@]} -eq 0 ]; then echo "no benchmarks in bench/"; exit 0; fi; \
	for script in "$${scripts[@]}"; do \
		echo "== $$script"; $(AMENT_ENV) $(VPY) "$$script"; \
	done

# Re-pin every package of the current venv. Left out: robot_brain itself (editable),
# robot_brain_msgs (built here), pip, and the egg-info records that ROS wheels install for the
# packages they bundle (rclpy, std_msgs, ...): those are not installable from any index.
# Local version labels are dropped (torch 2.13.0+cpu pins as 2.13.0: the CPU build where a
# local wheel provides it, PyPI's build elsewhere).
constraints: $(VPY)
	$(VPY) -c 'import importlib.metadata as m; \
	skip = {"robot-brain", "robot-brain-msgs", "pip"}; \
	norm = lambda n: n.lower().replace("_", "-").replace(".", "-"); \
	pins = {f"{d.name}=={d.version.partition(chr(43))[0]}" for d in m.distributions() \
	        if d.read_text("INSTALLER") and norm(d.name) not in skip \
	        and d.read_text("direct_url.json") is None}; \
	print("# Every package of a working venv, pinned: pip install -c requirements/constraints.txt ..."); \
	print("# Regenerate with `make constraints` after changing requirements/*.txt."); \
	print(*sorted(pins, key=lambda pin: norm(pin.split("==")[0])), sep="\n")' > $(CONSTRAINTS).tmp
	mv $(CONSTRAINTS).tmp $(CONSTRAINTS)

# --- clean ---------------------------------------------------------------------------------

clean:
	rm -rf .build build install log .pytest_cache .ruff_cache .hypothesis out *.egg-info
	find . -path ./.venv -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
