#!/usr/bin/env bash
# One bomix trial = one `litgpt pretrain` run on the trial's mixture (README.md beside this file).
#
# bomix's command evaluator calls:  bash run_trial.sh PYTHON MIXTURE_JSON METRICS_FILE
#   PYTHON        bomix's interpreter ({python}), which runs the log reader below
#   MIXTURE_JSON  the trial's mixture as litdata directories and weights ({mixture:litgpt}, written
#                 from data.toml); bomix_litgpt.BomixMixture reads it
#   METRICS       where bomix reads the losses ({metrics})
# and sets BOMIX_SEED, BOMIX_TRIAL_DIR. Inside a Slurm job this runs on the job's node.
set -euo pipefail
PYTHON=$1 MIXTURE=$2 METRICS=$3
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# ---- edit for your cluster (or set these in [evaluator.params] env) ----------------------------
MODEL=${MODEL:-pythia-160m}                                        # a litgpt model config name
TOKENIZER_DIR=${TOKENIZER_DIR:-checkpoints/EleutherAI/pythia-160m} # its tokenizer (downloaded beforehand)
VAL_DIR=${VAL_DIR:-/data/litgpt/val}                               # fixed validation tokens (litdata)
TRAINER_CMD=${TRAINER_CMD:-litgpt pretrain}
TRAIN_ARGS=(--train.max_tokens 2000000000 --train.global_batch_size 256 --train.micro_batch_size 8
            --train.max_seq_length 2048 --eval.interval 1000 --eval.max_iters 50 --devices auto)
# -------------------------------------------------------------------------------------------------

export PYTHONPATH="$HERE${PYTHONPATH:+:$PYTHONPATH}"      # so --data bomix_litgpt.BomixMixture is found
read -r -a TRAINER <<< "$TRAINER_CMD"
exec "$PYTHON" -m bomix.integrations.run_trainer --log-format litgpt --metrics "$METRICS" -- \
  "${TRAINER[@]}" "$MODEL" --data bomix_litgpt.BomixMixture --data.mixture "$MIXTURE" --data.val_dir "$VAL_DIR" \
  --tokenizer_dir "$TOKENIZER_DIR" --out_dir "$BOMIX_TRIAL_DIR/out" --seed "$BOMIX_SEED" "${TRAIN_ARGS[@]}"
