#!/usr/bin/env bash
# Create (or reuse) the repo-local Python environment <repo>/.venv with the
# pinned packages from scripts/requirements.txt.
#
# Idempotent: after a successful install a stamp file records the requirements
# and the interpreter; a later run whose stamp still matches does nothing.
# Usage: scripts/setup-python.sh [--force]      (any cwd)
# Env:   PYTHON=python3.11 to choose the base interpreter (default: python3).
set -euo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(git -C "$script_dir" rev-parse --show-toplevel 2>/dev/null || (cd "$script_dir/.." && pwd))"
cd "$repo_root"

python="${PYTHON:-python3}"
venv="$repo_root/.venv"
req="$script_dir/requirements.txt"
stamp="$venv/.tessera-setup-stamp"

force=0
case "${1:-}" in
  --force) force=1 ;;
  "") ;;
  *) echo "usage: $0 [--force]" >&2; exit 2 ;;
esac

# The stamp captures everything that decides what gets installed.
base_version="$("$python" -c 'import sys; print(sys.version.split()[0])')"
pins="$(grep -Ev '^[[:space:]]*(#|$)' "$req")"
want_stamp="python=$base_version
$pins"

if [[ $force -eq 0 && -f "$stamp" && -x "$venv/bin/python" ]] && [[ "$(cat "$stamp")" == "$want_stamp" ]]; then
  echo "setup-python: $venv is up to date (python $base_version; $(echo "$pins" | paste -sd' '))"
  exit 0
fi

start=$SECONDS
if [[ ! -x "$venv/bin/python" ]]; then
  echo "setup-python: creating $venv with $python ($base_version)"
  "$python" -m venv "$venv"
else
  echo "setup-python: reusing $venv (stamp missing or out of date)"
fi
rm -f "$stamp"

echo "setup-python: installing $(echo "$pins" | paste -sd' ')"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"

"$venv/bin/python" - <<'PY'
import numpy, onnx, onnxruntime
print(f"setup-python: onnx {onnx.__version__}, onnxruntime {onnxruntime.__version__}, numpy {numpy.__version__}")
PY

printf '%s' "$want_stamp" > "$stamp"
echo "setup-python: done in $((SECONDS - start)) s; activate with: source .venv/bin/activate"
