"""Imports TensorFlow without its C++ start-up banner.

TensorFlow 2.21 writes informational lines to the process's stderr while it
loads (the oneDNN notice, twice, and the CPU-instructions notice), before
its logging reads TF_CPP_MIN_LOG_LEVEL, so that variable cannot hide them.
A library should not print them into its user's program: the import runs
with file descriptor 2 captured, and every captured line that is not one of
those notices is written back to stderr, so warnings and errors still show.

No TensorFlow import here: the module is imported before it.
"""

import os
import re
import sys
import tempfile

# The start-up notices: absl's note on logging before its initialisation,
# and the informational (I...) lines of port.cc and cpu_feature_guard.cc.
_BANNER = re.compile(
    r'WARNING: All log messages before absl::InitializeLog\(\) is called '
    r'are written to STDERR'
    r'|I\d{4} [\d:.]+\s+\d+ (port|cpu_feature_guard)\.cc:\d+\] '
    r'|To enable the following instructions: ')


def without_banner(text: str) -> str:
  """`text` without the lines of TensorFlow's start-up notices."""
  return ''.join(line for line in text.splitlines(keepends=True)
                 if not _BANNER.match(line))


def import_tensorflow() -> None:
  """Imports tensorflow (once), hiding only its start-up notices.

  Does nothing when tensorflow is already imported. Where stderr has no
  file descriptor (some notebooks), imports as usual.
  """
  if 'tensorflow' in sys.modules:
    return
  try:
    sys.stderr.flush()
    saved = os.dup(2)
  except (AttributeError, OSError, ValueError):
    import tensorflow  # pylint: disable=g-import-not-at-top,unused-import
    return
  with tempfile.TemporaryFile() as captured:
    os.dup2(captured.fileno(), 2)
    try:
      import tensorflow  # pylint: disable=g-import-not-at-top,unused-import,redefined-outer-name
    finally:
      sys.stderr.flush()
      os.dup2(saved, 2)
      os.close(saved)
      captured.seek(0)
      kept = without_banner(captured.read().decode('utf-8', 'replace'))
      if kept:
        sys.stderr.write(kept)
        sys.stderr.flush()
