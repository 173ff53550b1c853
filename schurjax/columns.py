"""Declared table columns: each stage names the columns it computes and their cell types.

A declaration is an ordered, read-only mapping of column name → type (int, float, bool or str);
a table's columns are its stages' declarations joined in order, and a CSV file written with
them reads back as the values the run held in memory (:func:`typed_row`). No dependencies, so
host-only modules can declare their columns too.
"""

from collections.abc import Mapping
from types import MappingProxyType

# Column name → the type of its cells, in table order.
Columns = Mapping[str, type]
CELL_TYPES = (int, float, bool, str)


def declare(**types: type) -> Columns:
    """A stage's columns and their cell types, in the order they appear in a table."""
    unknown = {name: kind for name, kind in types.items() if kind not in CELL_TYPES}
    if unknown:
        raise TypeError(f"columns {unknown} need one of the cell types {[t.__name__ for t in CELL_TYPES]}")
    return MappingProxyType(dict(types))


def join_columns(*groups: Columns) -> Columns:
    """The columns of several stages, one after the other; a name declared twice is refused."""
    joined: dict[str, type] = {}
    for group in groups:
        repeated = sorted(set(joined) & set(group))
        if repeated:
            raise ValueError(f"columns {repeated} are declared by two stages; rename one of them")
        joined |= group
    return MappingProxyType(joined)


def _parse(text: str, kind: type):
    if text == "":
        return None
    if kind is bool:
        if text not in ("True", "False"):
            raise ValueError(f"{text!r} is neither True nor False")
        return text == "True"
    return kind(text)


def typed_row(cells: Mapping[str, str], columns: Columns) -> dict:
    """The cells of one CSV row as their declared types; an empty cell is None (a missing value).

    A cell of a column ``columns`` does not declare is refused: its type is unknown.
    """
    unknown = [name for name in cells if name not in columns]
    if unknown:
        raise ValueError(f"unknown column(s) {unknown}")
    typed = {}
    for name, text in cells.items():
        try:
            typed[name] = _parse(text, columns[name])
        except ValueError:
            raise ValueError(f"column {name}: {text!r} is not a {columns[name].__name__}") from None
    return typed
