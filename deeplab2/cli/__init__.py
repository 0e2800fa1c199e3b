"""The command lines: one module per command, each a thin `main(argv)`.

Each module parses its flags, calls the library and turns the library's
expected failures into one `error: ...` line on stderr and an exit status;
`main(argv=None)` returns that status (0 on success) and argparse's usage
errors exit with 2. The install names them as console scripts (`deeplab2-train`
runs `train.main`, `deeplab2-export` runs `export_model.main`, ...; see
setup.py), and the old script paths (`trainer/train.py`, `data/build_*.py`,
`evaluation/evaluate_panoptic.py`, `tools/convert_deeplab2_checkpoint.py`,
`export_model.py`, `infer.py`) are shims that run the same `main`. The library
never imports this package; `conversion_flags` holds the flags and run loop
the dataset converters share.
"""

import os

# oneDNN for every command, set before TensorFlow is imported (an explicit
# TF_ENABLE_ONEDNN_OPTS wins). TF 2.21 turns it on by itself only on CPUs
# with AVX-512 / AMX; on an AVX2-only AMD EPYC it made the synthetic
# config's training step 1.09x and ResNet-50's at 513 x 1025 1.15x faster
# (benchmarks/train_speed.py; docs/training.md, "Atrous convolutions and
# oneDNN").
os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '1')

