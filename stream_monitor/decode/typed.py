"""Typed records from the config's schema: one msgspec struct type per model, tagged by its name.

Each model's events decode straight into a struct whose ``model`` field (or the
key ``fields.model`` names) is the tag that picks the type; ``features`` is a
nested struct holding the model's features, and every other field the decoder
reads is typed as the careful path accepts it without rejecting or converting
it. Whatever does not fit (a string in a numeric feature, NaN literals, an
unknown model, a label event) fails to decode, and the message then goes
through the careful path. Unknown keys are skipped.

The value types follow what ``orjson`` gives, so that a decoded value is the
one the careful path would have read: integers are kept as integers (within
int64, beyond which orjson's values differ), numeric features take numbers and
booleans (an integer becomes its float), model versions are non-empty strings
or integers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Union

import msgspec

if TYPE_CHECKING:
    from stream_monitor.config import FieldMap, ModelConfig

_INT64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
#: A JSON scalar, as orjson gives it.
Scalar = Union[str, _INT64, float, bool, None]  # noqa: UP007 (a runtime type for msgspec)
#: A value of a numeric feature or the latency that converts to float64 as it is.
Number = Union[float, bool, None]  # noqa: UP007
#: A model version the careful path accepts (it rejects ``""``, booleans and floats).
Version = Union[Annotated[str, msgspec.Meta(min_length=1)], _INT64, None]  # noqa: UP007

#: The fields the decoder reads besides ``model`` and ``features``, and their types.
_FIELD_TYPES: dict[str, Any] = {
    "event_id": Scalar,
    "model_version": Version,
    "timestamp": Scalar,
    "prediction": Scalar,
    "label": Scalar,
    "latency_ms": Number,
}
#: A tree of JSON keys: a leaf is the name of the field read there.
_Tree = dict[str, "_Tree | str"]


@dataclass(frozen=True)
class TypedModel:
    """The struct type of one model and where each field sits in it.

    ``paths`` maps each field (``FieldMap`` attribute name) to its attribute
    path, dotted through nested structs (an :func:`operator.attrgetter` path).
    The features struct holds the model's features in config order;
    ``numeric`` tells which of them are numeric.
    """

    name: str
    struct: type[msgspec.Struct]
    paths: dict[str, str]
    numeric: tuple[bool, ...]


@dataclass(frozen=True)
class TypedSchema:
    """The struct types of all models and the type one message decodes to.

    ``message_type`` is one record or a list of them (a micro-batch); besides
    the models' structs it holds a struct whose tag is no model's name, which
    makes the tag required with a single model (msgspec accepts a lone tagged
    struct without its tag). Its records are no model's: the careful path takes them.
    """

    models: tuple[TypedModel, ...]
    message_type: Any


def typed_schema(
    models: Sequence[ModelConfig], fields: FieldMap, strict: bool = False
) -> TypedSchema | None:
    """The typed records of ``models`` under the field mapping ``fields``.

    ``strict`` records refuse unknown keys, so that the decoder reads (and
    checks the UTF-8 of) every byte of a message it takes, where other records
    skip unknown keys unread.

    None when the mapping cannot be expressed as structs: the model key is a
    dotted path, two fields share a key, or one field's path runs through
    another's value.
    """
    tree = _key_tree(fields)
    if tree is None or not models:
        return None
    typed = tuple(_typed_model(model, tree, fields.model, strict) for model in models)
    sentinel_tag = "\x00"
    while sentinel_tag in {model.name for model in models}:
        sentinel_tag += "\x00"
    sentinel = _struct("NoModel", [], strict, tag_field=fields.model, tag=sentinel_tag)
    event = Union[(*(t.struct for t in typed), sentinel)]  # type: ignore[valid-type]
    message_type = Union[event, list[event]]  # type: ignore[valid-type]  # noqa: UP007
    return TypedSchema(typed, message_type)


def typed_decoder(models: Sequence[ModelConfig], fields: FieldMap) -> msgspec.json.Decoder[Any]:
    """A msgspec JSON decoder of one message (an event or a micro-batch) into typed records.

    Raises ValueError when the field mapping cannot be expressed as structs
    (see :func:`typed_schema`).
    """
    schema = typed_schema(models, fields)
    if schema is None:
        raise ValueError("the field mapping cannot be decoded into typed records")
    return msgspec.json.Decoder(schema.message_type)


def _key_tree(fields: FieldMap) -> _Tree | None:
    """The keys every read field sits under (``model`` aside), or None if they clash."""
    if "." in fields.model or not fields.model:
        return None
    tree: _Tree = {}
    for name in ("features", *_FIELD_TYPES):
        parts = getattr(fields, name).split(".")
        if "" in parts or parts[0] == fields.model:
            return None
        node = tree
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                return None
            node = child
        if parts[-1] in node:
            return None
        node[parts[-1]] = name
    return tree


def _typed_model(model: ModelConfig, tree: _Tree, model_key: str, strict: bool) -> TypedModel:
    """The struct type of ``model`` laid out as ``tree``, tagged ``model_key: model.name``."""
    names = list(model.features)
    features = _struct(
        "Features",
        [
            (f"f{i}", Number if model.features[name] == "numeric" else Scalar, None)
            for i, name in enumerate(names)
        ],
        strict,
        rename={f"f{i}": name for i, name in enumerate(names)},
    )
    paths: dict[str, str] = {}
    members, rename = _members(tree, "", features, paths, strict)
    root = _struct("Event", members, strict, rename=rename, tag_field=model_key, tag=model.name)
    numeric = tuple(model.features[name] == "numeric" for name in names)
    return TypedModel(name=model.name, struct=root, paths=paths, numeric=numeric)


def _struct(
    name: str, members: list[tuple[Any, ...]], strict: bool, **options: Any
) -> type[msgspec.Struct]:
    """A keyword-only struct type untracked by the garbage collector (records hold no
    cycles), refusing unknown keys when ``strict``."""
    return msgspec.defstruct(
        name, members, kw_only=True, gc=False, forbid_unknown_fields=strict, **options
    )


def _members(
    tree: _Tree, prefix: str, features: type[msgspec.Struct], paths: dict[str, str], strict: bool
) -> tuple[list[tuple[Any, ...]], dict[str, str]]:
    """The struct members holding ``tree``, whose attributes are reached through ``prefix``.

    Records each field's attribute path in ``paths``. An object on the way to
    ``features`` is required (an event without features is not an inference
    event); any other object may be missing, and then reads as all None.
    """
    members: list[tuple[Any, ...]] = []
    rename: dict[str, str] = {}
    for number, (key, node) in enumerate(tree.items()):
        attr = f"f{number}"
        rename[attr] = key
        if node == "features":
            members.append((attr, features))
            paths["features"] = prefix + attr
        elif isinstance(node, str):
            members.append((attr, _FIELD_TYPES[node], None))
            paths[node] = prefix + attr
        else:
            inner, inner_rename = _members(node, f"{prefix}{attr}.", features, paths, strict)
            struct = _struct("Object", inner, strict, rename=inner_rename)
            if "features" in paths and paths["features"].startswith(f"{prefix}{attr}."):
                members.append((attr, struct))
            else:
                members.append((attr, struct, msgspec.field(default_factory=struct)))
    return members, rename
