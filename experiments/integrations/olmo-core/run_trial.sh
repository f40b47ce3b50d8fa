#!/usr/bin/env bash
# One bomix trial = one OLMo-core pretraining run on the trial's mixture (README.md beside this file).
#
# bomix's command evaluator calls:  bash run_trial.sh PYTHON MIXTURE_YAML METRICS_FILE
#   PYTHON        bomix's interpreter ({python}), which runs the log reader below
#   MIXTURE_YAML  the trial's mixture as an OLMo-core SourceMixtureDatasetConfig ({mixture:olmo-core},
#                 written from data.toml)
#   METRICS       where bomix reads the losses ({metrics})
# and sets BOMIX_SEED, BOMIX_TRIAL_DIR. Inside a Slurm job this runs on the job's node.
set -euo pipefail
PYTHON=$1 MIXTURE=$2 METRICS=$3
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# ---- edit for your cluster (or set these in [evaluator.params] env) ----------------------------
GPUS=${GPUS:-8}
TRAINER_CMD=${TRAINER_CMD:-torchrun --nproc-per-node=$GPUS $HERE/train_olmo_core.py}
VALIDATION=${VALIDATION:-$HERE/validation.toml}      # fixed per-domain validation token files
WORK_DIR=${WORK_DIR:-$BOMIX_TRIAL_DIR/work}          # OLMo-core's dataset cache (may be shared)
# -------------------------------------------------------------------------------------------------

read -r -a TRAINER <<< "$TRAINER_CMD"
exec "$PYTHON" -m bomix.integrations.run_trainer --log-format olmo-core --metrics "$METRICS" -- \
  "${TRAINER[@]}" --mixture "$MIXTURE" --validation "$VALIDATION" --seed "$BOMIX_SEED" \
  --save-folder "$BOMIX_TRIAL_DIR/checkpoints" --work-dir "$WORK_DIR"
