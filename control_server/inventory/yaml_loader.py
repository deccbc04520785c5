"""The YAML half of ``values.load_document``: SafeLoader plus ansible's tags, remembering
the line of every mapping key. Its own module so that PyYAML loads only when a YAML
document is read (an INI inventory, ``--version`` or ``--help`` never pay for it)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import yaml

from control_server.inventory.values import UnsafeText, ValueLoadError, VaultText

_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

KeyLines = dict[int, tuple[dict[Any, Any], dict[Any, int]]]


class _Loader(_BaseLoader):  # type: ignore[valid-type,misc]
    """SafeLoader plus ansible's tags, remembering the line of every mapping key."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.key_lines: dict[int, tuple[dict[Any, Any], dict[Any, int]]] = {}

    def construct_yaml_map(self, node: yaml.MappingNode) -> Iterator[dict[Any, Any]]:
        data: dict[Any, Any] = {}
        yield data
        data.update(self.construct_mapping(node))
        lines: dict[Any, int] = {}
        for key_node, _ in node.value:
            try:
                lines[self.construct_object(key_node)] = key_node.start_mark.line + 1
            except TypeError:
                continue
        self.key_lines[id(data)] = (data, lines)

    def construct_unsafe(self, node: yaml.Node) -> Any:
        if isinstance(node, yaml.ScalarNode):
            return UnsafeText(self.construct_scalar(node))
        if isinstance(node, yaml.SequenceNode):
            return [_mark_unsafe(v) for v in self.construct_sequence(node, deep=True)]
        if isinstance(node, yaml.MappingNode):
            return {k: _mark_unsafe(v) for k, v in self.construct_mapping(node, deep=True).items()}
        return None

    def construct_vault(self, node: yaml.Node) -> VaultText:
        if not isinstance(node, yaml.ScalarNode):
            raise yaml.constructor.ConstructorError(
                None, None, "!vault must be a string", node.start_mark
            )
        return VaultText(str(self.construct_scalar(node)))


def _mark_unsafe(value: Any) -> Any:
    if isinstance(value, str):
        return UnsafeText(value)
    if isinstance(value, list):
        return [_mark_unsafe(v) for v in value]
    if isinstance(value, dict):
        return {k: _mark_unsafe(v) for k, v in value.items()}
    return value


_Loader.add_constructor("tag:yaml.org,2002:map", _Loader.construct_yaml_map)
_Loader.add_constructor("tag:yaml.org,2002:python/dict", _Loader.construct_yaml_map)
_Loader.add_constructor("tag:yaml.org,2002:python/unicode", _Loader.construct_yaml_str)
_Loader.add_constructor("!unsafe", _Loader.construct_unsafe)
_Loader.add_constructor("!vault", _Loader.construct_vault)
_Loader.add_constructor("!vault-encrypted", _Loader.construct_vault)


def load_yaml(text: str) -> tuple[Any, KeyLines]:
    """The document in ``text`` and where its mapping keys were; ValueLoadError if bad."""
    loader = _Loader(text)
    try:
        data = loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise ValueLoadError(_yaml_message(exc), line) from None
    except (yaml.YAMLError, RecursionError, ValueError, TypeError, OverflowError) as exc:
        raise ValueLoadError(f"invalid YAML: {exc}") from None
    finally:
        loader.dispose()
    return data, loader.key_lines


def _yaml_message(exc: yaml.MarkedYAMLError) -> str:
    parts = [p for p in (exc.context, exc.problem) if p]
    return "invalid YAML: " + (", ".join(parts) if parts else str(exc))
