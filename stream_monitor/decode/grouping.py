"""Sorting events by what they are: inference events by (model, version), label events by model.

:meth:`EventGrouper.groups` checks a whole chunk a column at a time and
succeeds when every event is a valid inference event with plain field names;
:meth:`EventGrouper.groups_one_by_one` checks event by event, routes label
events (an event id and a label, no features) to their model, and rejects the
rest with the same reasons either way.
"""

from __future__ import annotations

import heapq
from collections.abc import Collection
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from stream_monitor.decode.batches import Reject
from stream_monitor.decode.paths import field_getter

if TYPE_CHECKING:
    from stream_monitor.config import FieldMap

#: Events (and their message indexes) by (model, version), and label events by model.
Groups = dict[tuple[str, str], tuple[list[dict[str, Any]], list[int]]]
LabelGroups = dict[str, tuple[list[dict[str, Any]], list[int]]]

#: Model-version types that may be valid (``bool``, which equals 0 and 1, is not).
_VERSION_VALUE_TYPES = frozenset({str, int, type(None)})
_message_index = attrgetter("message_index")


class EventGrouper:
    """Groups parsed events of the configured ``models``, reading the fields ``fields`` names."""

    def __init__(self, models: Collection[str], fields: FieldMap) -> None:
        self.models = models
        self.fields = fields
        self._model = field_getter(fields.model)
        self._version = field_getter(fields.model_version)
        self._features = field_getter(fields.features)
        self._label = field_getter(fields.label)
        self._event_id = field_getter(fields.event_id)
        #: Plain (undotted) names of the fields that decide an event's group.
        self._plain_keys = all(
            "." not in path for path in (fields.model, fields.model_version, fields.features)
        )

    def groups(self, events: list[dict[str, Any]], indexes: list[int]) -> Groups | None:
        """Events by (model, version), checked a column at a time; None unless all are valid.

        None sends the batch to :meth:`groups_one_by_one`, which rejects (or
        routes to the label path) event by event.
        """
        if not self._plain_keys or not events:
            return None
        fields = self.fields
        model_key, version_key, features_key = fields.model, fields.model_version, fields.features
        models: list[Any] = [event.get(model_key) for event in events]
        try:
            unique_models = set(models)
        except TypeError:
            return None
        if not all(type(m) is str and m in self.models for m in unique_models):
            return None
        if set(map(type, [event.get(features_key) for event in events])) != {dict}:
            return None
        versions = [event.get(version_key) for event in events]
        if not set(map(type, versions)) <= _VERSION_VALUE_TYPES:
            return None
        unique_versions = set(versions)
        if "" in unique_versions:
            return None
        names = {v: "unknown" if v is None else str(v) for v in unique_versions}
        if len(unique_models) == 1 and len(names) == 1:
            return {(models[0], names[versions[0]]): (events, indexes)}
        rows_of: dict[tuple[str, str], list[int]] = {}
        for row, key in enumerate(zip(models, map(names.__getitem__, versions), strict=True)):
            rows = rows_of.get(key)
            if rows is None:
                rows = rows_of[key] = []
            rows.append(row)
        return {
            key: ([events[i] for i in rows], [indexes[i] for i in rows])
            for key, rows in rows_of.items()
        }

    def groups_one_by_one(
        self, all_events: list[dict[str, Any]], all_indexes: list[int], rejects: list[Reject]
    ) -> tuple[Groups, LabelGroups]:
        """Inference events by (model, version) and label events by model, event by event.

        The rejects are merged into ``rejects`` (which holds the message-level
        rejects) in message order, a message's own rejects first.
        """
        groups: Groups = {}
        label_groups: LabelGroups = {}
        group_rejects: list[Reject] = []
        for index, event in zip(all_indexes, all_events, strict=True):
            key = self._group_key(index, event, group_rejects)
            if key is None:
                continue
            model, version = key
            if version is None:
                label_group = label_groups.setdefault(model, ([], []))
                label_group[0].append(event)
                label_group[1].append(index)
                continue
            group = groups.get((model, version))
            if group is None:
                group = groups[(model, version)] = ([], [])
            group[0].append(event)
            group[1].append(index)
        if group_rejects:
            rejects[:] = heapq.merge(rejects, group_rejects, key=_message_index)
        return groups, label_groups

    def _group_key(
        self, index: int, event: dict[str, Any], rejects: list[Reject]
    ) -> tuple[str, str | None] | None:
        """``(model, version)`` of an inference event, ``(model, None)`` of a label event."""
        model = self._model(event)
        if model is None:
            rejects.append(Reject(index, "missing_field", self.fields.model))
            return None
        if type(model) is not str:
            rejects.append(Reject(index, "wrong_type", self.fields.model))
            return None
        if model not in self.models:
            rejects.append(Reject(index, "unknown_model", model[:100]))
            return None
        features = self._features(event)
        if features is None:
            if self._label(event) is not None and self._event_id(event) is not None:
                return model, None
            rejects.append(Reject(index, "missing_field", self.fields.features))
            return None
        if type(features) is not dict:
            rejects.append(Reject(index, "wrong_type", self.fields.features))
            return None
        version = self._version(event)
        if version is None:
            return model, "unknown"
        if type(version) is str and version:
            return model, version
        if type(version) is int:
            return model, str(version)
        rejects.append(Reject(index, "wrong_type", self.fields.model_version))
        return None
