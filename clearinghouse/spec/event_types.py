"""Every event type in one union, for decoding stored events (tools, explain)."""

from __future__ import annotations

from typing import Union

from clearinghouse.spec import events as E
from clearinghouse.spec.waterfall import events as W


def _event_classes() -> tuple[type, ...]:
    classes = []
    for module in (E, W):
        for name in sorted(vars(module)):
            obj = getattr(module, name)
            if isinstance(obj, type) and issubclass(obj, E._Event) and obj is not E._Event:
                classes.append(obj)
    return tuple(sorted(set(classes), key=lambda c: c.__struct_config__.tag))  # type: ignore[attr-defined]


EVENT_CLASSES = _event_classes()
AnyEvent = Union[EVENT_CLASSES]  # type: ignore[valid-type]
