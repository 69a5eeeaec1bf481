#!/bin/bash
# Installs what pykemi needs on a fresh Debian machine (as root) and creates
# .venv with nox; nox sessions then install the package itself (its [test] extra holds the
# Python packages the suites need). Under CI a suite skipped for a missing tool fails the run
# (tests/conftest.py): whatever a suite needs is installed here.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
if command -v apt-get >/dev/null; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends \
        python3 python3-venv python3-dev gcc libc6-dev sip-tester ruby ruby-dev chromium lua-check redis-server postgresql >/dev/null
    # tests/test_stubs.py checks KSR.d.ts with tsc (npm installs typescript@5 on first use);
    # a node from elsewhere (e.g. NodeSource, which bundles npm) is kept
    if ! command -v npm >/dev/null; then
        apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
    fi
fi
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/nox ]; then
    "$PY" -m venv .venv
    .venv/bin/pip install -q --upgrade pip
    .venv/bin/pip install -q nox
fi
echo "bootstrap: ok ($(.venv/bin/python --version), sipp $(sipp -v 2>&1 | grep -o 'v[0-9][0-9.]*' | head -1 || true))"
