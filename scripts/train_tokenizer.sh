#!/usr/bin/env bash
# Train the tiny Duo-Tok encoder, stages 1-3, on the reference corpus, then evaluate and export it.
# Resumable: re-running it continues a killed stage and skips finished ones.
#   bash scripts/train_tokenizer.sh                 (after the README's reference-corpus commands)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
RUN=${RUN:-runs/duotok-tiny}
TRAIN=${TRAIN:-data/corpus/train}
VAL=${VAL:-data/corpus/validation}
STEPS_SSL=${STEPS_SSL:-800}
STEPS_MT=${STEPS_MT:-2000}
STEPS_CB=${STEPS_CB:-1800}
STEPS_CB_MORE=${STEPS_CB_MORE:-1800}   # stage 3 continued (its own run folder, so it does not resume the first)
STEPS_CB_CONTEXT=${STEPS_CB_CONTEXT:-1800}  # stage 3 continued again with the mel context added
STEPS_CB_4096=${STEPS_CB_4096:-4000}  # and once more with 4,096 codes per track and a heavier phone loss
# Stage 3 adds a mel skip into each branch and frame-wise targets from the corpus labels (the sung note and the
# phone at every token frame); without them the vocal tokens kept little of the melody (model card).
STAGE3_UPDATES='{"n_pitch_classes": 49, "branch_mel_skip": true, "loss_weights": {"frame_pitch": 1.0, "frame_phone": 1.0}}'
EXPORT=${EXPORT:-checkpoints/duotok-tiny}

stage() {  # stage NAME STEPS [extra args]
  local name=$1 steps=$2; shift 2
  if [ -f "$RUN/$name/final/model.safetensors" ] && [ -f "$RUN/$name/done" ]; then
    echo "stage $name already trained"; return
  fi
  $PY -m tokenizer.train --stage "$name" --data "$TRAIN" --run-dir "$RUN" --steps "$steps" "$@"
  touch "$RUN/$name/done"
}

stage ssl "$STEPS_SSL"
$PY -m tokenizer.eval --checkpoint "$RUN/ssl/final" --data "$VAL" --metrics ssl --out "$RUN/ssl/metrics.json"
stage multitask "$STEPS_MT"
$PY -m tokenizer.eval --checkpoint "$RUN/multitask/final" --data "$VAL" --metrics separation,ctc \
  --out "$RUN/multitask/metrics.json"
stage codebook "$STEPS_CB" --config-updates "$STAGE3_UPDATES" --export "$RUN/export-first"
$PY -m tokenizer.eval --checkpoint "$RUN/export-first" --data "$VAL" --metrics separation,ctc,frames,codebook \
  --out "$RUN/codebook/metrics.json"
# The quantized path was still learning the sung note when the first 1,800 steps ended (model card): continue it
# with a fresh warm-up and a lower peak rate instead of starting stage 3 over.
if [ ! -f "$RUN/continued/codebook/done" ]; then
  $PY -m tokenizer.train --stage codebook --init "$RUN/export-first" --continue-codebook --data "$TRAIN" \
    --run-dir "$RUN/continued" --steps "$STEPS_CB_MORE" --lr 2e-4 --warmup 100 --export "$RUN/export-continued"
  touch "$RUN/continued/codebook/done"
fi
$PY -m tokenizer.eval --checkpoint "$RUN/export-continued" --data "$VAL" --metrics separation,ctc,frames,codebook \
  --out "$RUN/continued/metrics.json"
# Phones are told apart over more than one token's 40 ms: each branch then also sees the mel frames of 4 tokens on
# each side (a convolution that starts at zero, so training goes on from the tokens above).
if [ ! -f "$RUN/context/codebook/done" ]; then
  $PY -m tokenizer.train --stage codebook --init "$RUN/export-continued" --continue-codebook \
    --config-updates '{"branch_mel_context": 4}' --data "$TRAIN" --run-dir "$RUN/context" \
    --steps "$STEPS_CB_CONTEXT" --lr 2e-4 --warmup 100 --export "$RUN/export-context"
  touch "$RUN/context/codebook/done"
fi
$PY -m tokenizer.eval --checkpoint "$RUN/export-context" --data "$VAL" --metrics separation,ctc,frames,codebook \
  --out "$RUN/context/metrics.json"
# A probe (bench/phone_probe.py) found the phone on 52% of tokens in the branch's continuous input but on 34% in
# its 1,024 code vectors: the quantizer was where the words went. Grow both codebooks to 4,096 codes (the new
# frozen codes start random; the learned transforms and everything else keep their weights) and weigh the
# frame-wise phone loss 2.
if [ ! -f "$RUN/codes4096/codebook/done" ]; then
  $PY -m tokenizer.train --stage codebook --init "$RUN/export-context" --continue-codebook \
    --config-updates '{"codebook_size": 4096, "loss_weights": {"frame_phone": 2.0}}' --data "$TRAIN" \
    --run-dir "$RUN/codes4096" --steps "$STEPS_CB_4096" --lr 2e-4 --warmup 100 --export "$RUN/export"
  touch "$RUN/codes4096/codebook/done"
fi
$PY -m tokenizer.eval --checkpoint "$RUN/export" --data "$VAL" --metrics separation,ctc,frames,codebook \
  --out "$RUN/codes4096/metrics.json"
echo "trained; metrics in $RUN/**/metrics.json; copy $RUN/export to $EXPORT when they beat the shipped ones"
