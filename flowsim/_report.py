"""What every report shares: pickling by field values, ``summary()`` and ``to_frame()``."""
from __future__ import annotations

import enum
import types
from dataclasses import fields

import numpy as np

__all__ = ["Picklable", "Report", "html_block", "short_repr"]

#: The most characters a notebook display or a plain repr shows.
HTML_CHARS = 3000
REPR_CHARS = 160


def html_block(title, text, limit=HTML_CHARS):
    """A small, valid HTML block: a bold title over the text in a <pre> (escaped, cut to
    ``limit`` characters)."""
    import html
    if len(text) > limit:
        text = text[:limit].rsplit("\n", 1)[0] + "\n..."
    return (f"<div class=\"flowsim\"><strong>{html.escape(title)}</strong>"
            f"<pre style=\"white-space: pre-wrap; margin: 0.3em 0\">{html.escape(text)}</pre>"
            "</div>")


def short_repr(obj):
    """``<Name: the first line of its summary>``, at most :data:`REPR_CHARS` characters."""
    name = type(obj).__name__
    try:
        line = str(obj.summary()).strip().splitlines()[0]
    except Exception:   # noqa: BLE001 - a repr must not raise
        return f"<{name}>"
    if len(line) > REPR_CHARS:
        line = line[:REPR_CHARS - 3] + "..."
    return f"<{name}: {line}>"


def _plain(value):
    if isinstance(value, types.MappingProxyType):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _rebuild(cls, values):
    return cls(**values)


class Picklable:
    """Mixin for frozen result dataclasses: pickle and deep-copy through the constructor.

    Read-only mappings (``types.MappingProxyType``, which pickle refuses) travel as dicts and
    read-only arrays are frozen again by ``__post_init__`` on arrival, so a round trip gives
    an equal object: arrays bitwise, statuses, messages and counts.
    """

    __slots__ = ()

    def __init_subclass__(cls, **kwargs):
        """Give every result a short ``repr`` (a line, not a dump of its arrays): placed in
        the class before ``@dataclass`` runs, which then keeps it."""
        super().__init_subclass__(**kwargs)
        if "__repr__" not in cls.__dict__ and hasattr(cls, "summary"):
            cls.__repr__ = short_repr

    def _repr_html_(self):
        """The notebook display: the summary, short and escaped."""
        summary = getattr(self, "summary", None)
        text = summary() if callable(summary) else repr(self)
        return html_block(type(self).__name__, str(text))

    def __reduce__(self):
        return _rebuild, (type(self), {f.name: _plain(getattr(self, f.name))
                                       for f in fields(self)})

    def __deepcopy__(self, memo):
        import copy
        cls, (kind, values) = self.__reduce__()
        return cls(kind, copy.deepcopy(values, memo))


class Report(Picklable):
    """Mixin of every diagnostic report: ``summary()`` (text) and ``to_frame()`` (a table).

    A report lists in ``_series`` the fields that hold one entry per row (per point, per
    eigendirection, per level); ``to_frame`` makes them the columns and keeps the scalar
    fields in ``DataFrame.attrs``. A report without series gives one row of its scalars.
    """

    __slots__ = ()
    _series = ()

    def summary(self):  # pragma: no cover - every report overrides it
        raise NotImplementedError

    def _scalars(self):
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, enum.Enum):
                value = value.value
            if isinstance(value, (bool, int, float, str, np.bool_, np.integer, np.floating)) \
                    or value is None:
                out[f.name] = value.item() if isinstance(value, np.generic) else value
        return out

    def to_frame(self):
        """The report as a ``pandas.DataFrame``: its series as columns (scalars in
        ``.attrs``), or one row of its scalar fields."""
        scalars = self._scalars()
        series = {name: getattr(self, name) for name in self._series
                  if getattr(self, name) is not None}
        if not series:
            return _table({k: [v] for k, v in scalars.items()})
        length = max(len(v) for v in series.values())
        columns = {}
        for name, value in series.items():
            value = np.asarray(value)
            if value.ndim == 2:  # one column per component
                columns.update({f"{name}_{i + 1}": value[:, i] for i in range(value.shape[1])})
            elif len(value) == length:
                columns[name] = value
        frame = _table(columns)
        frame.attrs.update(scalars)
        return frame


def _table(columns):
    import pandas
    return pandas.DataFrame(columns)
