#!/usr/bin/env bash
# Prints the path of a working Python 3.10 interpreter (TFX 1.16 needs Python < 3.11).
# Order: $PYTHON310, python3.10 on PATH (a pyenv shim only counts if it runs), pyenv's install
# folders, the usual system places, then uv (`uv python find 3.10`, else `uv python install 3.10`).
set -u
works() {
  "$1" -c 'import sys; print(sys.executable) if sys.version_info[:2] == (3, 10) else sys.exit(1)' 2>/dev/null
}
candidates=()
[ -n "${PYTHON310:-}" ] && candidates+=("$PYTHON310")
candidates+=(python3.10)
pyenv_root=$(pyenv root 2>/dev/null || echo "${PYENV_ROOT:-$HOME/.pyenv}")
for p in "$pyenv_root"/versions/3.10*/bin/python3.10 /usr/local/bin/python3.10 /usr/bin/python3.10; do
  candidates+=("$p")
done
for c in "${candidates[@]}"; do
  if out=$(works "$c"); then
    echo "$out"
    exit 0
  fi
done
if command -v uv >/dev/null 2>&1; then
  found=$(uv python find 3.10 2>/dev/null) || {
    echo "no Python 3.10 found; asking uv to install one (uv python install 3.10)" >&2
    uv python install 3.10 >&2 && found=$(uv python find 3.10 2>/dev/null)
  }
  if [ -n "${found:-}" ] && out=$(works "$found"); then
    echo "$out"
    exit 0
  fi
fi
cat >&2 <<'MESSAGE'
error: no Python 3.10 found. TFX 1.16 runs on Python 3.10 only. Any one of these gets it:
  uv (from PyPI):  pip install uv && uv python install 3.10
  pyenv:           pyenv install 3.10
  the OS package:  apt-get install python3.10 python3.10-venv   (or your distribution's)
or point to one:   PYTHON310=/path/to/python3.10 make run
MESSAGE
exit 1
