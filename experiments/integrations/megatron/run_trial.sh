#!/usr/bin/env bash
# One bomix trial = one Megatron-LM pretraining run on the trial's mixture (README.md beside this file).
#
# bomix's command evaluator calls:  bash run_trial.sh PYTHON BLEND_FILE METRICS_FILE
#   PYTHON      bomix's interpreter ({python}), which runs the log reader below
#   BLEND_FILE  the trial's mixture as Megatron weights and prefixes, "W1 PREFIX1 W2 PREFIX2 ..."
#               ({mixture:megatron}, written from data.toml; a domain with several prefixes has its
#               weight split by their token counts)
#   METRICS     where bomix reads the losses ({metrics})
# and sets BOMIX_SEED, BOMIX_TRIAL, BOMIX_TRIAL_DIR. Inside a Slurm job (runner "slurm") this runs
# on the job's node; torchrun starts one rank per GPU.
set -euo pipefail
PYTHON=$1 BLEND_FILE=$2 METRICS=$3

# ---- edit for your cluster (or set these in [evaluator.params] env) ----------------------------
MEGATRON_LM=${MEGATRON_LM:-$HOME/Megatron-LM}                     # a Megatron-LM checkout
GPUS=${GPUS:-8}                                                    # GPUs on the node
TRAINER_CMD=${TRAINER_CMD:-torchrun --nproc-per-node=$GPUS $MEGATRON_LM/pretrain_gpt.py}
# Fixed held-out validation data, one prefix per domain, the same for every trial: a loss on a
# validation split of the trial's own blend would change with the mixture and compare nothing.
VALID_PREFIXES=${VALID_PREFIXES:-/data/megatron/val/books /data/megatron/val/cc /data/megatron/val/stack /data/megatron/val/pes2o /data/megatron/val/reddit}
VALID_NAMES=${VALID_NAMES:-books cc stack pes2o reddit}           # the loss name of each, in order
MODEL_ARGS=(--num-layers 12 --hidden-size 768 --num-attention-heads 12 --seq-length 2048
            --max-position-embeddings 2048 --position-embedding-type rope --normalization RMSNorm
            --swiglu --untie-embeddings-and-output-weights --disable-bias-linear)
TRAIN_ARGS=(--micro-batch-size 8 --global-batch-size 256 --train-iters 5000 --lr 6e-4 --min-lr 6e-5
            --lr-decay-style cosine --lr-warmup-iters 500 --weight-decay 0.1 --clip-grad 1.0 --bf16)
DATA_ARGS=(--tokenizer-type HuggingFaceTokenizer --tokenizer-model gpt2)
EVAL_ARGS=(--eval-interval 1000 --eval-iters 50 --log-interval 100)
# -------------------------------------------------------------------------------------------------

read -r -a TRAINER <<< "$TRAINER_CMD"
read -r -a BLEND < "$BLEND_FILE"            # Megatron splits --*-data-path on whitespace too
read -r -a VALID <<< "$VALID_PREFIXES"
read -r -a NAMES <<< "$VALID_NAMES"
if [ "${#VALID[@]}" -ne "${#NAMES[@]}" ]; then
  echo "run_trial.sh: VALID_PREFIXES and VALID_NAMES must have as many entries, got ${#VALID[@]} and ${#NAMES[@]}" >&2
  exit 2
fi
RENAME=()
for i in "${!NAMES[@]}"; do RENAME+=(--rename "validation-$i=${NAMES[$i]}"); done

exec "$PYTHON" -m bomix.integrations.run_trainer --log-format megatron --metrics "$METRICS" "${RENAME[@]}" -- \
  "${TRAINER[@]}" "${MODEL_ARGS[@]}" "${TRAIN_ARGS[@]}" "${DATA_ARGS[@]}" "${EVAL_ARGS[@]}" \
  --train-data-path "${BLEND[@]}" \
  --valid-data-path "${VALID[@]}" --multiple-validation-sets \
  --seed "$BOMIX_SEED" \
  --save "$BOMIX_TRIAL_DIR/checkpoints" --data-cache-path "$BOMIX_TRIAL_DIR/data-cache"
