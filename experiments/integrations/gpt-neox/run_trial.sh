#!/usr/bin/env bash
# One bomix trial = one GPT-NeoX pretraining run on the trial's mixture (README.md beside this file).
#
# bomix's command evaluator calls:  bash run_trial.sh PYTHON MIXTURE_YAML METRICS_FILE
#   PYTHON        bomix's interpreter ({python}), which runs the log reader below
#   MIXTURE_YAML  the trial's mixture as a NeoX config file ({mixture:gpt-neox}):
#                 train-data-paths + train-data-weights, written from data.toml
#   METRICS       where bomix reads the losses ({metrics})
# and sets BOMIX_SEED, BOMIX_TRIAL_DIR. deepy.py merges every YAML it is given, so the mixture is
# one more config file after yours.
set -euo pipefail
PYTHON=$1 MIXTURE=$2 METRICS=$3

# ---- edit for your cluster (or set these in [evaluator.params] env) ----------------------------
NEOX=${NEOX:-$HOME/gpt-neox}                                       # a GPT-NeoX checkout
TRAINER_CMD=${TRAINER_CMD:-python $NEOX/deepy.py $NEOX/train.py}
# Your model and training configs. They must give valid-data-paths and test-data-paths: fixed
# held-out data, the same for every trial (experiments/integrations/gpt-neox/neox_data.yml).
NEOX_CONFIGS=${NEOX_CONFIGS:-$NEOX/configs/125M.yml $NEOX/configs/local_setup.yml experiments/integrations/gpt-neox/neox_data.yml}
# -------------------------------------------------------------------------------------------------

read -r -a TRAINER <<< "$TRAINER_CMD"
read -r -a CONFIGS <<< "$NEOX_CONFIGS"
TRIAL_YML="$BOMIX_TRIAL_DIR/trial.yml"     # this trial's seed and output folders
printf '{"seed": %d, "save": "%s", "log-dir": "%s"}\n' "$BOMIX_SEED" "$BOMIX_TRIAL_DIR/checkpoints" \
  "$BOMIX_TRIAL_DIR/logs" > "$TRIAL_YML"

exec "$PYTHON" -m bomix.integrations.run_trainer --log-format gpt-neox --metrics "$METRICS" -- \
  "${TRAINER[@]}" "${CONFIGS[@]}" "$TRIAL_YML" "$MIXTURE"
