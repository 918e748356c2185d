#!/usr/bin/env bash
# Execute the notebook top to bottom with papermill in one profile and pack what it wrote.
#   scripts/render.sh full OUTDIR [papermill args]   e.g. -p USE_COMPILE True
#   (on the GPU machine: OUTDIR=$OUT, .whl/ carried; see README)
# Leaves OUTDIR/executed.ipynb, OUTDIR/log.txt and OUTDIR/outputs.tar.gz.part-* (figures/ and data/samples/).
set -uo pipefail
if [ "${1:-}" = "--help" ] || [ "${1:-}" = "-h" ]; then
  sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//'
  echo "usage: scripts/render.sh PROFILE OUTDIR [papermill args]"
  exit 0
fi
profile=${1:-full}
outdir=${2:-out}
shift 2 || true
mkdir -p "$outdir"
if [ -d .whl ]; then  # a machine without internet: install papermill & a kernel from carried wheels
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site PATH=/tmp/site/bin:$PATH
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
rm -rf checkpoints figures data/samples
start=$(date +%s)
PYTHONUNBUFFERED=1 timeout "${RENDER_TIMEOUT:-3500}" python3 -m papermill rollno-hw2.ipynb "$outdir/executed.ipynb" \
  -p PROFILE "$profile" "$@" --log-output -k python3 2>&1 | grep -v '%|' | tee "$outdir/log.txt"
rc=${PIPESTATUS[0]}
echo "papermill exit $rc after $(( $(date +%s) - start )) s"
# papermill adds a cell tagged injected-parameters (committed, it would override the parameters cell in Colab);
# the stamp records each code cell's source hash and this run's id, which metrics.json and the samples carry
python3 scripts/stamp_render.py "$outdir/executed.ipynb" --metrics figures/metrics.json || rc=1
# the GPU machine returns files of at most 16 MiB: split the archive (join with `cat outputs.tar.gz.part-* | tar xz`)
tar czf - figures data/samples 2>/dev/null | split -b 15m - "$outdir/outputs.tar.gz.part-"
exit "$rc"
