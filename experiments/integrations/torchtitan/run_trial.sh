#!/usr/bin/env bash
# One bomix trial = one torchtitan pretraining run on the trial's mixture (README.md beside this file).
#
# bomix's command evaluator calls:  bash run_trial.sh PYTHON MIXTURE_JSON METRICS_FILE
#   PYTHON        bomix's interpreter ({python}), which runs the log reader below
#   MIXTURE_JSON  the trial's mixture as torchtitan sources ({mixture:torchtitan}, written from
#                 data.toml); bomix_titan.py turns it into the run's interleaved dataloader
#   METRICS       where bomix reads the losses ({metrics})
# and sets BOMIX_SEED, BOMIX_TRIAL_DIR. Inside a Slurm job this runs on the job's node.
set -euo pipefail
PYTHON=$1 MIXTURE=$2 METRICS=$3
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# ---- edit for your cluster (or set these in [evaluator.params] env) ----------------------------
GPUS=${GPUS:-8}
TRAINER_CMD=${TRAINER_CMD:-torchrun --nproc-per-node=$GPUS -m torchtitan.train}
export BOMIX_VALIDATION_PATH=${BOMIX_VALIDATION_PATH:-/data/titan/validation}   # fixed held-out text
export BOMIX_TITAN_BASE=${BOMIX_TITAN_BASE:-torchtitan.models.llama3.config_registry:llama3_debugmodel}
# -------------------------------------------------------------------------------------------------

export BOMIX_MIXTURE_TORCHTITAN=$MIXTURE
export PYTHONPATH="$HERE${PYTHONPATH:+:$PYTHONPATH}"      # so --module bomix_titan is found
read -r -a TRAINER <<< "$TRAINER_CMD"
exec "$PYTHON" -m bomix.integrations.run_trainer --log-format torchtitan --metrics "$METRICS" -- \
  "${TRAINER[@]}" --module bomix_titan --config bomix_trial
