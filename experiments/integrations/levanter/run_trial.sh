#!/usr/bin/env bash
# One bomix trial = one Levanter (or Marin) training run on the trial's mixture (README.md beside this file).
#
# bomix's command evaluator calls:  bash run_trial.sh PYTHON MIXTURE_YAML METRICS_FILE
#   PYTHON        bomix's interpreter ({python}): merges the config and reads the log
#   MIXTURE_YAML  the trial's mixture as Levanter data settings ({mixture:levanter}: data.configs
#                 with train_urls, data.train_weights), written from data.toml
#   METRICS       where bomix reads the losses ({metrics})
# and sets BOMIX_SEED, BOMIX_TRIAL_DIR.
set -euo pipefail
PYTHON=$1 MIXTURE=$2 METRICS=$3
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# ---- edit for your cluster (or set these in [evaluator.params] env) ----------------------------
BASE_CONFIG=${BASE_CONFIG:-$HERE/base.yaml}                 # your Levanter config, minus the mixture
TRAINER_CMD=${TRAINER_CMD:-python -m levanter.main.train_lm}  # in the environment Levanter (JAX) lives in
# -------------------------------------------------------------------------------------------------

CONFIG="$BOMIX_TRIAL_DIR/levanter.yaml"
"$PYTHON" "$HERE/merge_config.py" "$BASE_CONFIG" "$MIXTURE" "$CONFIG" --seed "$BOMIX_SEED" --trial-dir "$BOMIX_TRIAL_DIR"
read -r -a TRAINER <<< "$TRAINER_CMD"
exec "$PYTHON" -m bomix.integrations.run_trainer --log-format levanter --metrics "$METRICS" -- \
  "${TRAINER[@]}" --config_path "$CONFIG"
