#!/usr/bin/env bash
# The main job on the built-in synthetic dataset: install, make the data,
# train and evaluate, export a SavedModel. Re-running resumes (a finished
# run trains no more steps) and re-exports the latest checkpoint.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup_env.sh cpu
PY=.venv/bin/python
CONFIG=configs/synthetic/resnet_mini_os16.textproto
DATA_DIR=runs/synthetic_data
MODEL_DIR=runs/synthetic
if [ ! -f "$DATA_DIR/dataset_descriptor.json" ]; then
  $PY data/build_synthetic_data.py --output_dir="$DATA_DIR"
fi
$PY trainer/train.py --config_file="$CONFIG" --mode=train_and_eval \
  --model_dir="$MODEL_DIR"
# --overwrite: the export is always rebuilt from the latest checkpoint.
$PY export_model.py --config_file="$CONFIG" --checkpoint_path="$MODEL_DIR" \
  --output_path="$MODEL_DIR/export" --overwrite
