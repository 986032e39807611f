"""The reference page: every scenario-file key and every result column.

Generated from the single sources of truth: the pydantic models of
:mod:`fleet_sim.scenarios.config` (keys, types, defaults, constraints,
descriptions) and :mod:`fleet_sim.results.schema` (tables and columns). The
page is deterministic (declaration order, no timestamps), so the committed
``docs/reference.md`` can be checked against it::

    python -m fleet_sim.scenarios.reference > docs/reference.md
"""

from __future__ import annotations

import inspect
import json
import sys
import types
import typing
from typing import Annotated, Any, Literal

import annotated_types as at
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from fleet_sim.results import schema
from fleet_sim.scenarios.config import DISTRIBUTION_CONFIGS, ScenarioConfig

_BASIC = {float: "number", int: "integer", str: "string", bool: "boolean", Any: "any"}
_BOUNDS = ((at.Gt, "gt", ">"), (at.Ge, "ge", ">="), (at.Lt, "lt", "<"), (at.Le, "le", "<="))


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def _num(value: Any) -> str:
    """A number as written in TOML: ``65536`` for 65536.0, else exactly (``repr``)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return json.dumps(value) if isinstance(value, bool) else repr(value)


def _entries(n: int) -> str:
    return f"{n} entry" if n == 1 else f"{n} entries"


def _constraints(metadata: typing.Iterable[Any]) -> list[str]:
    out: list[str] = []
    for meta in metadata:
        if isinstance(meta, FieldInfo):
            out += _constraints(meta.metadata)
            continue
        for cls, attr, op in _BOUNDS:
            if isinstance(meta, cls):
                out.append(f"{op} {_num(getattr(meta, attr))}")
        if isinstance(meta, at.MinLen):
            out.append(f"at least {_entries(meta.min_length)}")
        if isinstance(meta, at.MaxLen):
            out.append(f"at most {_entries(meta.max_length)}")
        pattern = getattr(meta, "pattern", None)
        if isinstance(pattern, str):
            out.append(f"matches `{pattern}`")
    return out


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _union_members(tp: Any) -> list[Any]:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return list(typing.get_args(tp))
    return [tp]


def _tag(model: type[BaseModel], disc: str) -> str:
    return ", ".join(json.dumps(a) for a in typing.get_args(model.model_fields[disc].annotation))


def _entry_key(model: type[BaseModel]) -> str | None:
    """The key that names an array entry of ``model`` in key paths (``name``, or a host
    group's ``type``; see :mod:`fleet_sim.scenarios.keypaths`)."""
    return next((k for k in ("name", "type") if k in model.model_fields), None)


def _is_tag(field: FieldInfo) -> bool:
    """Whether ``field`` is a union tag (a one-value Literal such as ``kind``)."""
    return typing.get_origin(field.annotation) is Literal and len(
        typing.get_args(field.annotation)) == 1


def _entry_note(model: type[BaseModel], path: str, named: str) -> str:
    """How ``--set`` picks an entry of the array at ``path``, with an example key."""
    example = next(n for n, f in model.model_fields.items()
                   if n != _entry_key(model) and not _is_tag(f))
    return (f"In `--set` and `--param`, an entry is picked by name or by index: "
            f"`{named}.{example}` or `{path.replace('[]', '[0]')}.{example}`.")


def _summary(doc: str | None) -> str:
    """The first paragraph of a docstring, on one line."""
    text = inspect.cleandoc(doc or "").split("\n\n")[0]
    return " ".join(text.split()).replace("``", "`")


class _Walker:
    """Walks the models from :class:`ScenarioConfig`, collecting one section per table."""

    def __init__(self) -> None:
        self.sections: list[tuple[str, str, list[tuple[str, ...]]]] = []
        self.distributions = False

    def model(self, model: type[BaseModel], path: str, title: str, named: str = "") -> None:
        """Document ``model`` at key ``path`` (``named``: the same path with array
        entries picked by name, e.g. ``fleet.hosts.<type>``), then its nested tables."""
        rows: list[tuple[str, ...]] = []
        doc = _summary(model.__doc__)
        if path.endswith("[]"):
            doc = f"{doc} {_entry_note(model, path, named)}".strip()
        self.sections.append((title, doc, rows))
        later: list[tuple[type[BaseModel], str, str, str]] = []
        for name, field in model.model_fields.items():
            key = f"{path}.{name}" if path else name
            named_key = f"{named}.{name}" if named else name
            kind, constraints, nested = self.type_of(field.annotation, key, field.discriminator)
            constraints = _constraints(field.metadata) + constraints
            description = field.description or ""
            if not description and len(nested) == 1:
                description = _summary(nested[0][0].__doc__)
            elif not description and nested:
                description = "one of the tables below"
            rows.append((f"`{key}`", kind, self.default(field), ", ".join(constraints),
                         description))
            for sub, sub_path, sub_title in nested:
                entry = _entry_key(sub)
                segment = "" if sub_path == key else f".<{entry}>" if entry else "[<i>]"
                later.append((sub, sub_path, sub_title, named_key + segment))
        for sub, sub_path, sub_title, sub_named in later:
            self.model(sub, sub_path, sub_title, sub_named)

    def type_of(self, tp: Any, key: str, disc: str | None = None
                ) -> tuple[str, list[str], list[tuple[type[BaseModel], str, str]]]:
        """(type text, item constraints, nested models to document) of an annotation."""
        constraints: list[str] = []
        while typing.get_origin(tp) is Annotated:
            for meta in tp.__metadata__:
                if isinstance(meta, FieldInfo) and isinstance(meta.discriminator, str):
                    disc = meta.discriminator
            constraints += _constraints(tp.__metadata__)
            tp = tp.__origin__
        members = _union_members(tp)
        optional = type(None) in members
        members = [m for m in members if m is not type(None)]
        if optional:
            text, more, nested = self.type_of(
                members[0] if len(members) == 1 else typing.Union[tuple(members)], key, disc)
            return f"{text} or none", constraints + more, nested
        if len(members) > 1:
            if set(members) == set(DISTRIBUTION_CONFIGS):
                self.distributions = True
                return "number or [distribution](#distributions)", constraints, []
            if disc is not None and all(_is_model(m) for m in members):
                nested = [(m, key, f"`{key}` ({disc} = {_tag(m, disc)})") for m in members]
                tags = ", ".join(_tag(m, disc) for m in members)
                return f"table by `{disc}`: {tags}", constraints, nested
            return " or ".join(self.type_of(m, key)[0] for m in members), constraints, []
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if origin is Literal and len(args) == 1:
            return json.dumps(args[0]), constraints, []
        if origin is Literal:
            return "one of " + ", ".join(json.dumps(a) for a in args), constraints, []
        if origin is list:
            text, more, nested = self.type_of(args[0], key + "[]")
            if more:
                constraints.append("each " + " and ".join(more))
            if nested and text.startswith("table"):
                return "array of tables" + text[len("table"):], constraints, nested
            return f"array of {text}", constraints, nested
        if origin is dict:
            value, _, nested = self.type_of(args[1], key + ".<key>")
            return ("table" if value == "any" else f"table of {value}"), constraints, nested
        if _is_model(tp):
            return "table", constraints, [(tp, key, f"`{key}`")]
        return _BASIC.get(tp, getattr(tp, "__name__", str(tp))), constraints, []

    @staticmethod
    def default(field: FieldInfo) -> str:
        if field.is_required():
            return "required"
        value = field.get_default(call_default_factory=True)
        if isinstance(value, BaseModel):
            if isinstance(value, DISTRIBUTION_CONFIGS):
                data = value.model_dump()
                if data["dist"] == "deterministic":
                    return f"`{_num(data['value'])}`"
                items = (f"{k} = {json.dumps(v) if k == 'dist' else _num(v)}"
                         for k, v in data.items())
                return "`{" + ", ".join(items) + "}`"
            return "(see its table)"
        if value is None:
            return "none"
        if isinstance(value, list):
            return "`[" + ", ".join(_num(v) if isinstance(v, int | float) else json.dumps(v)
                                    for v in value) + "]`"
        if isinstance(value, int | float):
            return f"`{_num(value)}`"
        return f"`{json.dumps(value)}`"


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    out += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return out


def _config_part() -> list[str]:
    walker = _Walker()
    walker.model(ScenarioConfig, "", "top level")
    out = ["## Scenario-file keys", "",
           "From the models of `fleet_sim/scenarios/config.py`. Unknown keys are errors; "
           "`[]` in a key path stands for an entry of an array; `--set` and `--param` "
           "pick it by index or by its name (apps and workloads by `name`, host groups "
           "by `type`): `apps[0].replicas` or `apps.web.replicas`, "
           "`fleet.hosts[0].count` or `fleet.hosts.std.count`.", ""]
    header = ("key", "type", "default", "constraint", "description")
    for title, doc, rows in walker.sections:
        out += [f"### {title}", ""]
        if doc:
            out += [doc, ""]
        out += [*_table(header, rows), ""]
    if walker.distributions:
        out += ["### Distributions", "",
                "A number (always that value) or a table chosen by `dist`:", ""]
        for model in DISTRIBUTION_CONFIGS:
            rows = [(f"`{name}`", walker.type_of(f.annotation, name)[0], walker.default(f),
                     ", ".join(_constraints(f.metadata)), f.description or "")
                    for name, f in model.model_fields.items()]
            out += [f"#### dist = {_tag(model, 'dist')}", "", _summary(model.__doc__), "",
                    *_table(header, rows), ""]
    return out


def _results_part() -> list[str]:
    out = ["## Result tables", "",
           "From `fleet_sim/results/schema.py`. Every table of a `Results` also starts "
           "with the run columns below and one column per swept key path.", "",
           "### run columns", ""]
    header = ("column", "dtype", "unit", "description")
    out += [*_table(header, [(f"`{c.name}`", c.dtype, c.unit, c.description)
                             for c in schema.RUN_COLUMNS]), ""]
    for table in schema.TABLES.values():
        out += [f"### `{table.name}`", "", table.description, ""]
        if table.key:
            out += ["Key: " + ", ".join(f"`{k}`" for k in table.key) + ".", ""]
        out += [*_table(header, [(f"`{c.name}`", c.dtype, c.unit, c.description)
                                 for c in table.columns]), ""]
    return out


def reference_markdown() -> str:
    """The whole reference page, as Markdown (ends with one newline)."""
    out = ["# Reference", "",
           "Generated by `python -m fleet_sim.scenarios.reference > docs/reference.md`; "
           "do not edit by hand.", "", *_config_part(), *_results_part()]
    while out and out[-1] == "":
        out.pop()
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.stdout.write(reference_markdown())
