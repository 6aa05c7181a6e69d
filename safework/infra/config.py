"""Config slices to frozen, typed dataclasses, and back.

Each library defines its settings once, as a frozen dataclass with defaults, and reads its
slice of the experiment config through `from_config`:

  @dataclasses.dataclass(frozen=True)
  class LossConfig:
    name: Literal['cpgd', 'grpo'] = 'cpgd'
    clip_eps: float = 0.2
    verifier_weights: tuple[float, ...] = (1.0,)

  loss_cfg = from_config(LossConfig, config.rl.loss, path='rl.loss')

A config field the dataclass does not have fails at start-up with the full dotted path,
the known fields and the closest one; a value of the wrong type or outside a `Literal`
fails the same way. Fields absent from the slice take the dataclass default, so defaults
live in one place. `__post_init__` checks (consistency between fields) run as usual; a
ValueError or TypeError they raise is re-raised with the path in front.

Supported field types: int, float (an int is accepted and converted), bool, str,
`Literal[...]`, `tuple[X, ...]` and `tuple[X, Y]` (a list is converted), `X | None`, other
unions (the first member that accepts the value wins), `dict[str, X]`, nested dataclasses
(from a sub-slice or an instance), and `Any`. An int is never accepted as a bool, nor a
bool as a number.
"""

from __future__ import annotations

import dataclasses
import difflib
import numbers
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, TypeVar, Union

import ml_collections

T = TypeVar("T")


class ConfigError(ValueError):
  """A config slice that does not fit its dataclass; the message names the field."""


def from_config(cls: type[T], cfg: Any, path: str = "") -> T:
  """Builds the frozen dataclass `cls` from a config slice.

  Args:
    cls: a frozen dataclass type.
    cfg: an `ml_collections.ConfigDict` (or `FrozenConfigDict`), a mapping, an instance of
      `cls` (returned as is), or None (all defaults).
    path: the slice's dotted path in the experiment config, for error messages.

  Returns:
    an instance of `cls`.

  Raises:
    ConfigError: an unknown or missing field, a value of the wrong type, a bad `Literal`
      choice, or a failed `__post_init__` check; the message names the full path.
  """
  if not (dataclasses.is_dataclass(cls) and isinstance(cls, type)):
    raise TypeError(f"from_config needs a dataclass type, got {cls!r}")
  if not cls.__dataclass_params__.frozen:
    raise TypeError(f"{cls.__name__} must be a frozen dataclass (settings are immutable)")
  if isinstance(cfg, cls):
    return cfg
  values = _as_dict(cfg, path, cls)
  fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
  hints = typing.get_type_hints(cls)
  for key in values:
    if key not in fields:
      close = difflib.get_close_matches(str(key), list(fields), n=1)
      hint = f"; did you mean '{close[0]}'?" if close else ""
      raise ConfigError(f"Unknown field '{_join(path, key)}' for {cls.__name__}; known fields: "
                        f"{', '.join(fields)}{hint}")
  kwargs = {}
  for name, field in fields.items():
    if name in values:
      kwargs[name] = _convert(values[name], hints[name], _join(path, name))
    elif (field.default is dataclasses.MISSING
          and field.default_factory is dataclasses.MISSING):
      raise ConfigError(f"Missing required field '{_join(path, name)}' for {cls.__name__}")
  try:
    return cls(**kwargs)
  except (ValueError, TypeError) as e:
    raise ConfigError(f"{path or cls.__name__}: {e}") from e


def to_config_dict(instance: Any) -> ml_collections.ConfigDict:
  """The dataclass `instance` as a ConfigDict (nested dataclasses as nested ConfigDicts).

  `from_config(type(instance), to_config_dict(instance))` equals `instance`.
  """
  if not dataclasses.is_dataclass(instance) or isinstance(instance, type):
    raise TypeError(f"to_config_dict needs a dataclass instance, got {instance!r}")
  return ml_collections.ConfigDict(_plain(instance))


def _plain(value: Any) -> Any:
  if dataclasses.is_dataclass(value) and not isinstance(value, type):
    return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value) if f.init}
  if isinstance(value, Mapping):
    return {k: _plain(v) for k, v in value.items()}
  if isinstance(value, (tuple, list)):
    return type(value)(_plain(v) for v in value)
  return value


def _join(path: str, name: Any) -> str:
  return f"{path}.{name}" if path else str(name)


def _as_dict(cfg: Any, path: str, cls: type) -> dict[str, Any]:
  if cfg is None:
    return {}
  if isinstance(cfg, (ml_collections.ConfigDict, ml_collections.FrozenConfigDict)):
    return cfg.to_dict()  # Resolves field references.
  if isinstance(cfg, Mapping):
    return dict(cfg)
  raise ConfigError(f"'{path or cls.__name__}' must be a config dict for {cls.__name__}, "
                    f"got {type(cfg).__name__} {cfg!r}")


def _type_name(tp: Any) -> str:
  return tp.__name__ if isinstance(tp, type) else str(tp).replace("typing.", "")


def _convert(value: Any, tp: Any, path: str) -> Any:
  """`value` checked against (and converted to) the annotation `tp`."""
  origin, args = typing.get_origin(tp), typing.get_args(tp)
  if tp is Any:
    return value
  if origin is Literal:
    if not any(a == value and type(a) is type(value) for a in args):
      close = difflib.get_close_matches(str(value), [str(a) for a in args], n=1)
      hint = f"; did you mean {close[0]!r}?" if close else ""
      raise ConfigError(f"'{path}' is {value!r}; choose one of "
                        f"{', '.join(repr(a) for a in args)}{hint}")
    return value
  if origin in (Union, types.UnionType):
    if value is None and type(None) in args:
      return None
    members = [a for a in args if a is not type(None)]
    errors = []
    for member in members:
      try:
        return _convert(value, member, path)
      except ConfigError as e:
        errors.append(str(e))
    if len(members) == 1:
      raise ConfigError(errors[0] + " (or None)")
    raise ConfigError(f"'{path}' is {value!r}, which fits none of {_type_name(tp)}")
  if dataclasses.is_dataclass(tp):
    if isinstance(value, tp):
      return value
    return from_config(tp, value, path)
  if origin is tuple or tp is tuple:
    if not isinstance(value, (tuple, list)):
      raise ConfigError(f"'{path}' must be a tuple (or list), got {type(value).__name__} "
                        f"{value!r}")
    if not args or (len(args) == 2 and args[1] is Ellipsis):
      item_tp = args[0] if args else Any
      return tuple(_convert(v, item_tp, f"{path}[{i}]") for i, v in enumerate(value))
    if len(value) != len(args):
      raise ConfigError(f"'{path}' must have {len(args)} entries, got {len(value)}: {value!r}")
    return tuple(_convert(v, a, f"{path}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
  if origin in (dict, Mapping) or tp in (dict, Mapping):
    if isinstance(value, (ml_collections.ConfigDict, ml_collections.FrozenConfigDict)):
      value = value.to_dict()
    if not isinstance(value, Mapping):
      raise ConfigError(f"'{path}' must be a dict, got {type(value).__name__} {value!r}")
    key_tp, value_tp = args if args else (Any, Any)
    return {_convert(k, key_tp, f"{path} key {k!r}"): _convert(v, value_tp, _join(path, k))
            for k, v in value.items()}
  return _convert_scalar(value, tp, path)


def _convert_scalar(value: Any, tp: Any, path: str) -> Any:
  is_bool = isinstance(value, bool) or type(value).__name__ == "bool_"
  if tp is bool:
    ok = is_bool
  elif tp is int:
    ok = isinstance(value, numbers.Integral) and not is_bool
  elif tp is float:
    ok = isinstance(value, numbers.Real) and not is_bool
  elif isinstance(tp, type):
    ok = isinstance(value, tp)
  else:
    raise TypeError(f"'{path}': from_config does not support the annotation {tp!r}")
  if not ok:
    raise ConfigError(f"'{path}' must be {_type_name(tp)}, got {type(value).__name__} "
                      f"{value!r}")
  if tp in (bool, int, float):
    return tp(value)
  return value
