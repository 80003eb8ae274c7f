#!/usr/bin/env bash
# Creates (once) the Python virtual environment the Mesos compatibility tests run
# third-party Mesos client code in: pymesos, a Mesos scheduler and executor library
# written by others, installed from PyPI.
#
# pymesos needs http-parser, whose C extension no longer builds on Python >= 3.11
# (Cython output for older CPython). http-parser ships a pure-Python parser that pymesos
# uses when the extension is absent, so the sdist is built here as a pure-Python wheel.
#
# Usage: scripts/mesos-py-env.sh [VENV_DIR]   (default: target/mesos-py)
# Prints the venv's python on success; exits non-zero when it cannot be built.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${1:-target/mesos-py}"
PYMESOS_VERSION=0.3.15
HTTP_PARSER_VERSION=0.9.0

if [ -x "$venv/bin/python" ] && [ -f "$venv/.agora-ready" ]; then
  echo "$venv/bin/python"
  exit 0
fi
command -v python3 >/dev/null 2>&1 || { echo "python3 not found" >&2; exit 1; }
rm -rf "$venv"
python3 -m venv "$venv" >&2
py="$venv/bin/python"
"$py" -m pip install --quiet --disable-pip-version-check setuptools wheel >&2
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$py" -m pip download --quiet --disable-pip-version-check --no-deps --no-binary :all: \
  "http-parser==$HTTP_PARSER_VERSION" -d "$work" >&2
tar -xzf "$work"/http-parser-*.tar.gz -C "$work"
src="$(ls -d "$work"/http-parser-*/)"
rm -f "$src"/http_parser/*.so
(cd "$src" && "$OLDPWD/$py" -c "import sys; sys.argv = ['setup.py', '-q', 'bdist_wheel', '-d', '$work/wheels']; import setup; setup.run_setup(False)") >&2
"$py" -m pip install --quiet --disable-pip-version-check "$work"/wheels/http_parser-*.whl >&2
"$py" -m pip install --quiet --disable-pip-version-check "pymesos==$PYMESOS_VERSION" >&2
"$py" -c "import pymesos; from http_parser.http import HttpParser" >&2
touch "$venv/.agora-ready"
echo "$py"
