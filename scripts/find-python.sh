#!/usr/bin/env bash
# Print the path of a Python interpreter new enough for FlexDash (>= 3.12).
#
# Candidates, in order: $PYTHON, python3.13, python3.12 and python3 on PATH,
# then pyenv's installed 3.12+ versions (newest first), then /usr/bin/python3.1X.
# Each candidate is judged by *running* it: a pyenv shim for a version that is
# not selected exists on PATH but fails, and a name says nothing reliable.
set -uo pipefail

MIN_MAJOR=3
MIN_MINOR=12

# Succeeds (and prints the real executable) when $1 runs and is new enough.
usable() {
    local candidate=$1
    [ -n "$candidate" ] || return 1
    "$candidate" -c "
import sys
if sys.version_info < ($MIN_MAJOR, $MIN_MINOR):
    raise SystemExit(1)
print(sys.executable)
" 2>/dev/null
}

candidates=()
if [ -n "${PYTHON:-}" ]; then
    if usable "$PYTHON" >/dev/null; then
        candidates+=("$PYTHON")
    else
        echo "warning: PYTHON=$PYTHON is not a working Python $MIN_MAJOR.$MIN_MINOR+; searching elsewhere" >&2
    fi
fi
for name in python3.13 python3.12 python3; do
    if path=$(command -v "$name" 2>/dev/null); then
        candidates+=("$path")
    fi
done
# `pyenv root` when pyenv is on PATH; otherwise its usual homes, so a shell
# without pyenv's init (cron, CI) still finds the versions installed there.
root=$(pyenv root 2>/dev/null) || root=${PYENV_ROOT:-$HOME/.pyenv}
if [ -d "$root/versions" ]; then
    # Newest first: version sort, reversed.
    while IFS= read -r dir; do
        candidates+=("$dir/bin/python3")
    done < <(find "$root/versions" -mindepth 1 -maxdepth 1 -name '3.1[2-9]*' 2>/dev/null | sort -rV)
fi
while IFS= read -r path; do
    candidates+=("$path")
done < <(find /usr/bin -maxdepth 1 -name 'python3.1[2-9]' 2>/dev/null | sort -rV)

for candidate in "${candidates[@]}"; do
    if found=$(usable "$candidate"); then
        # sys.executable is empty in odd embeddings; fall back to the candidate.
        printf '%s\n' "${found:-$candidate}"
        exit 0
    fi
done

echo "FlexDash needs Python $MIN_MAJOR.$MIN_MINOR or newer; none found. Install one (e.g. pyenv install 3.13) or set PYTHON=/path/to/python3.12" >&2
exit 1
