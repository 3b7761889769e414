#!/usr/bin/env bash
# Every study at full scale on a 2-core machine (2 processes), then the report. Resumable: re-run after a crash.
#   bash experiments/run_all.sh [report name, default v1] [scale, default full]
# Each study is also one command: python -m lensml.study study=<name> scale=<scale> (see docs/science.md).
set -euo pipefail
cd "$(dirname "$0")/.."
NAME=${1:-v1}
SCALE=${2:-full}
PY=${PYTHON:-.venv/bin/python}
SUM=reports/$NAME/summaries
S="$PY -m lensml.study scale=$SCALE summary_dir=$SUM"

two() {  # run stage $2 of study $1 as two shards in parallel
  $S study=$1 stage=$2 shard=0 n_shards=2 & p0=$!
  $S study=$1 stage=$2 shard=1 n_shards=2 & p1=$!
  wait $p0; wait $p1
}

# headline (Studies 1 and 7): training data once, 6 trainings over 2 processes, evaluation, summary
$S study=headline stage=data
two headline train
two headline evaluate
$S study=headline stage=summarise
# evaluation-only studies on the headline checkpoints (3, 4, 6) and the ideal-observer signal
two instrument_shift evaluate
$S study=instrument_shift stage=summarise
two velocity_degradation evaluate
$S study=velocity_degradation stage=summarise
$S study=near_real
$S study=signal
# studies with their own trainings (5, 2)
$S study=ablations stage=data
two ablations train
two ablations evaluate
$S study=ablations stage=summarise
$S study=domain_shift stage=data
two domain_shift train
two domain_shift evaluate
$S study=domain_shift stage=summarise
# control: the same CNNs with the macro lens and source fixed, and its ablations
$S study=control
$S study=control_ablations
$S study=mask_leak
# the control with the validity mask computed on the noisy flux (noise.mask_from=observed)
$S study=control_observed_mask
$PY -m lensml.report name=$NAME
