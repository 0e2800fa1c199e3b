"""Runs a command line's main() in the test process, as a process would.

A subprocess costs a TensorFlow import (5-10 s); tests that only check a
command's arguments, outputs, messages and exit status call its main()
here instead. Subprocesses stay where only a real process proves the point
(signals, a kill, what the interpreter prints at exit, a shim run as a
script).
"""

from collections.abc import Callable, Sequence
import dataclasses
import logging

_LOGGERS = ('', 'deeplab2', 'tensorflow')


@dataclasses.dataclass(frozen=True)
class Result:
  """What a process would give: exit status, stdout and stderr."""
  returncode: int
  stdout: str
  stderr: str


def run_main(main: Callable[[Sequence[str]], int | None],
             argv: Sequence[str], capsys) -> Result:
  """Calls main(argv) and captures what it printed (pytest's capsys).

  argparse's SystemExit (usage errors, --help) becomes the exit status. The
  logger levels and root handlers a command sets (logging.basicConfig,
  TF's logger quieted before an error) are put back afterwards.

  Args:
    main: a deeplab2.cli module's main.
    argv: its arguments.
    capsys: pytest's capsys fixture.

  Returns:
    The Result.
  """
  capsys.readouterr()   # what the test printed before
  loggers = [logging.getLogger(name) for name in _LOGGERS]
  levels = [logger.level for logger in loggers]
  root_handlers = list(logging.getLogger().handlers)
  try:
    status = main(list(argv))
  except SystemExit as e:
    status = e.code
  finally:
    for logger, level in zip(loggers, levels):
      logger.setLevel(level)
    logging.getLogger().handlers[:] = root_handlers
  out, err = capsys.readouterr()
  assert status is None or isinstance(status, int), (
      f'main returned {status!r}: an exit status is an int')
  return Result(status or 0, out, err)
