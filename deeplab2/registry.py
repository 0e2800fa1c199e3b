"""Named registries: config names -> builders."""


class Registry:
  """Maps names to objects; rejects duplicates and lists valid names on a miss.

  Example:
    BACKBONES = Registry('backbone')

    @BACKBONES.register('resnet50')
    def build_resnet50(...): ...

    BACKBONES.get('resnet50')
  """

  def __init__(self, kind):
    self.kind = kind
    self._entries = {}

  def register(self, name, obj=None):
    """Registers `obj` under `name`; usable as a decorator when obj is None."""
    if obj is None:
      return lambda o: self.register(name, o)
    if name in self._entries:
      raise KeyError(f'{self.kind} "{name}" is already registered.')
    self._entries[name] = obj
    return obj

  def get(self, name):
    try:
      return self._entries[name]
    except KeyError:
      raise KeyError(
          f'Unknown {self.kind} "{name}"; valid names: '
          f'{", ".join(sorted(self._entries))}.') from None

  def __contains__(self, name):
    return name in self._entries

  def names(self):
    return sorted(self._entries)
