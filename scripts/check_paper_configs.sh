#!/usr/bin/env bash
# Does every training entry's full-size config build and train on this machine's GPU? Runs each one for a few
# steps through its real CLI under `accelerate launch` (1 process, bf16 where the entry takes it) on a handful of
# songs, and writes one line per entry (ok / FAILED, seconds, its last log line) to OUT_DIR/summary.txt, with
# the peak GPU memory that nvidia-smi saw. The tiny configs are the ones tested on CPU in CI; this is the check
# for the GPU claim in the README.
#   bash scripts/check_paper_configs.sh SONGS_DIR TOKENS_DIR TEXT_MODEL OUT_DIR
#     SONGS_DIR   a few song folders (python -m corpus synth --n 3 …)
#     TOKENS_DIR  the same songs tokenized (python -m tokenizer tokenize SONGS_DIR --out TOKENS_DIR)
#     TEXT_MODEL  a sentencepiece model for the LM (e.g. checkpoints/lm-tiny/spm.model)
#   env: PY (python, default python3), STEPS (2), MP (bf16), SECONDS_EACH (150, a time limit per entry),
#        ONLY (a regular expression: run only the entries whose label matches, e.g. 'tokenizer|decoder')
set -uo pipefail
if [ $# -ne 4 ]; then sed -n 2,13p "$0"; exit 2; fi
SONGS=$1 TOKENS=$2 SPM=$3 P=$4
PY=${PY:-python3} STEPS=${STEPS:-2} MP=${MP:-bf16} SECONDS_EACH=${SECONDS_EACH:-150}
LAUNCH="$PY -m accelerate.commands.launch --num_processes 1 --num_machines 1 --mixed_precision $MP --dynamo_backend no -m"
mkdir -p "$P"
: > "$P/summary.txt"

check() {  # label command...
  if [ -n "${ONLY:-}" ] && ! [[ $1 =~ $ONLY ]]; then return; fi
  local started=$(date +%s) result
  if timeout "$SECONDS_EACH" "${@:2}" > "$P/$1.log" 2>&1; then result=ok; else result="FAILED (exit $?)"; fi
  echo "$1: $result in $(( $(date +%s) - started )) s; last log line: $(grep -E '"step"' "$P/$1.log" | tail -1)" \
    | tee -a "$P/summary.txt"
}

( while true; do nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits >> "$P/gpu_memory.txt" 2>/dev/null
  sleep 1; done ) &
monitor=$!
trap 'kill $monitor 2>/dev/null' EXIT

# the three encoder stages chain through --run-dir (each starts from the previous stage's final weights)
for stage in ssl multitask codebook; do
  check "tokenizer-$stage" $LAUNCH tokenizer.train --stage $stage --config paper --data "$SONGS" --run-dir "$P/tok" \
    --steps "$STEPS" --batch-size 2 --mixed-precision "$MP"
done
check vocoder $LAUNCH tokenizer.train --stage vocoder --config paper --data "$SONGS" --run-dir "$P/vocoder" \
  --steps "$STEPS" --batch-size 4
check vocoder-gan $LAUNCH tokenizer.train --stage vocoder --config paper --gan --discriminator paper --data "$SONGS" \
  --run-dir "$P/vocoder" --steps "$STEPS" --batch-size 4
# the decoder reads its code table from the paper tokenizer just trained (32,768 codes cover any token ids)
check decoder-vocal $LAUNCH tokenizer.train --stage decoder --track vocal --config paper --data "$SONGS" \
  --tokens "$TOKENS" --tokenizer "$P/tok/codebook/final" --run-dir "$P/decoder" --steps "$STEPS" --batch-size 4 \
  --mixed-precision "$MP"
for config in base large; do
  check "lm-$config" $LAUNCH lm.train --data "$TOKENS" --val-data "$TOKENS" --config $config --text-model "$SPM" \
    --run-dir "$P/lm-$config" --steps "$STEPS" --batch-size 2 --max-len 1024 --eval-batches 1 --mixed-precision "$MP"
done
if [ -s "$P/gpu_memory.txt" ]; then
  echo "peak GPU memory in use (MiB, sampled each second, other processes included): $(sort -n "$P/gpu_memory.txt" | tail -1)" \
    | tee -a "$P/summary.txt"
fi
! grep -q FAILED "$P/summary.txt"
