#!/usr/bin/env bash
# Render the notebook in one profile as the kernel runs it, and stamp it.
#   scripts/render.sh PROFILE [OUTDIR] [--keep-checkpoints]     e.g. scripts/render.sh cpu out
# Deletes figures/ and data/samples/ (and checkpoints/, unless --keep-checkpoints: then every training whose key matches
# loads instead of training, and the appendix's table says which), executes rollno-hw2.ipynb with HW2_PROFILE=PROFILE
# and HW2_BARS=0 (no progress bars in the saved outputs; nothing is injected), stamps the result
# (scripts/stamp_render.py) and copies it over rollno-hw2.ipynb when every cell ran. Leaves OUTDIR/executed.ipynb and
# OUTDIR/log.txt.
set -uo pipefail
if [ "${1:-}" = "--help" ] || [ "${1:-}" = "-h" ] || [ -z "${1:-}" ]; then
  sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'
  exit 0
fi
profile=$1
outdir=${2:-out}
keep=${3:-}
py=${PYTHON:-python3}
mkdir -p "$outdir"
rm -rf figures data/samples
[ "$keep" = "--keep-checkpoints" ] || rm -rf checkpoints
HW2_PROFILE=$profile HW2_BARS=0 PYTHONUNBUFFERED=1 $py scripts/execute.py rollno-hw2.ipynb "$outdir/executed.ipynb" 2>&1 | tee "$outdir/log.txt"
rc=${PIPESTATUS[0]}
$py scripts/stamp_render.py "$outdir/executed.ipynb" --metrics figures/metrics.json || rc=1
[ "$rc" = 0 ] && cp "$outdir/executed.ipynb" rollno-hw2.ipynb
exit "$rc"
