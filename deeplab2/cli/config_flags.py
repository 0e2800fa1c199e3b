"""The flags of every command that reads an experiment config."""

import argparse

_OVERRIDE_HELP = (
    'merged over --config_file (repeatable, applied in order): text format, '
    "e.g. 'trainer_options { solver_options { base_learning_rate: 0.01 } }', "
    'or a dotted field path, "=" and a value (a repeated field set here '
    "replaces the file's values)")


def add_config_flags(parser: argparse.ArgumentParser,
                     required: bool = True) -> None:
  """Adds --config_file and --config_override."""
  parser.add_argument('--config_file', required=required,
                      help='the experiment textproto')
  parser.add_argument('--config_override', action='append', default=[],
                      metavar='OVERRIDE', help=_OVERRIDE_HELP)


def config_source(args: argparse.Namespace):
  """The config the flags name: a path, or a config.ConfigFile with the
  overrides (None without --config_file)."""
  if not args.config_file:
    return None
  if not args.config_override:
    return args.config_file
  # Imported here: --help must not wait for TensorFlow.
  from deeplab2 import config as config_lib  # pylint: disable=g-import-not-at-top
  return config_lib.ConfigFile(args.config_file, tuple(args.config_override))
