#!/usr/bin/env bash
# Prepare a fresh machine for ykt: a virtual environment with the project installed, and (for the
# tests) the system packages the real PC/SC and trace tests need. Idempotent; fails loudly, never skips.
#   scripts/bootstrap.sh demo   venv + ykt (no system packages needed)
#   scripts/bootstrap.sh test   venv + ykt[test] + pcscd, vsmartcard-vpcd, tshark, gcc, swig, libpcsclite-dev
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-test}
VENV=${YKT_VENV:-.venv}
PY=${PYTHON:-python3}

system_packages=(pcscd vsmartcard-vpcd tshark gcc swig libpcsclite-dev)

missing_packages() {
  local p
  for p in "${system_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
  done
}

if [ "$what" = test ]; then
  mapfile -t missing < <(missing_packages)
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
      echo "bootstrap: installing system packages: ${missing[*]}" >&2
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq
      apt-get install -y -qq "${missing[@]}" >/dev/null
    else
      echo "bootstrap: missing system packages: ${missing[*]}" >&2
      echo "bootstrap: run as root:  apt-get install -y ${missing[*]}" >&2
      exit 1
    fi
  fi
fi

if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
stamp="$VENV/.ykt-$what-$(cat setup.cfg pyproject.toml | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  "$VENV/bin/pip" install -q --upgrade pip >/dev/null
  if [ "$what" = test ]; then
    "$VENV/bin/pip" install -q -e '.[test]'
  else
    "$VENV/bin/pip" install -q -e .
  fi
  touch "$stamp"
fi
