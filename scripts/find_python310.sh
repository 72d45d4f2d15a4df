#!/usr/bin/env bash
# Prints the path of a working Python 3.10 interpreter (TFX 1.16 needs Python < 3.11).
# Order: $PYTHON310, python3.10 on PATH (a pyenv shim only counts if it runs), pyenv's install folders.
set -u
candidates=()
[ -n "${PYTHON310:-}" ] && candidates+=("$PYTHON310")
candidates+=(python3.10)
pyenv_root=$(pyenv root 2>/dev/null || echo "${PYENV_ROOT:-$HOME/.pyenv}")
for p in "$pyenv_root"/versions/3.10*/bin/python3.10 /usr/local/bin/python3.10 /usr/bin/python3.10; do
  candidates+=("$p")
done
for c in "${candidates[@]}"; do
  if out=$("$c" -c 'import sys; print(sys.executable) if sys.version_info[:2] == (3, 10) else sys.exit(1)' 2>/dev/null); then
    echo "$out"
    exit 0
  fi
done
echo "error: no Python 3.10 found (TFX 1.16 needs Python 3.10). Install it (e.g. 'pyenv install 3.10') or set PYTHON310=/path/to/python3.10." >&2
exit 1
