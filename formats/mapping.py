"""The mapping document's shape, checked strictly: the one check the admin, the API and the import command share.

`mapping_document_check` looks at the document alone (no target, no file columns): every key at every level
must be known, every value of the right type, converter names and options known to the converter registry.
`formats.services.mapping_validate` runs it first, then checks the document against the target's fields and
the format's columns. A refusal names the key at fault (`fields.symbol.colums`) and what is allowed there.
"""

from __future__ import annotations

from typing import Any

from config.errors import MappingError
from formats.converters.registry import check_options
from formats.filters import OPS

MAPPING_VERSION = 1
TOP_KEYS = ("version", "reader", "filters", "fields")
READER_KEYS = ("section", "header_line")
FILTER_KEYS = ("column", "op", "values", "value")
# confidence and reason are informational, written by the suggestion (and "edited by reviewer" by the editor).
FIELD_KEYS = ("columns", "converter", "options", "confidence", "reason")
MAX_FILTERS = 100
MAX_FILTER_VALUES = 1000
MAX_TEXT = 1000  # a column name, a filter value, a section or a reason longer than this is not a mapping's


def _fail(message: str, path: str, **details: Any) -> MappingError:
    return MappingError(message, details={"key": path, **details})


def _check_keys(value: dict[str, Any], allowed: tuple[str, ...], where: str) -> None:
    for key in value:
        if key not in allowed:
            path = f"{where}.{key}" if where else str(key)
            place = f"in '{where}'" if where else "at the top of the mapping"
            raise _fail(f"Unknown key {key!r} {place}. Allowed: {', '.join(allowed)}.", path, allowed=list(allowed))


def _type_name(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a text", bool: "true/false", type(None): "null"}
    return names.get(type(value), "a number" if isinstance(value, int | float) else type(value).__name__)


def _text(value: Any, path: str, *, allow_null: bool = False) -> None:
    if value is None and allow_null:
        return
    if not isinstance(value, str):
        wanted = "a text or null" if allow_null else "a text"
        raise _fail(f"'{path}' must be {wanted}, not {_type_name(value)} ({value!r:.60}).", path)
    if len(value) > MAX_TEXT:
        raise _fail(f"'{path}' is {len(value)} characters long; at most {MAX_TEXT} are allowed.", path)


def _whole_number(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def mapping_document_check(mapping: Any) -> None:
    """Raise MappingError naming the first key or value that is not part of a valid mapping document."""
    if not isinstance(mapping, dict):
        raise _fail(f"The mapping must be a JSON object with 'fields', not {_type_name(mapping)}.", "")
    _check_keys(mapping, TOP_KEYS, "")
    if "version" in mapping and (not _whole_number(mapping["version"]) or mapping["version"] != MAPPING_VERSION):
        raise _fail(f"'version' must be {MAPPING_VERSION}, not {mapping['version']!r:.60}.", "version")
    _check_reader(mapping.get("reader"))
    _check_filters(mapping.get("filters"))
    fields = mapping.get("fields")
    if not isinstance(fields, dict):
        raise _fail(
            "The mapping needs a 'fields' object: {target field: {columns, converter, options}}"
            + ("." if fields is None else f", not {_type_name(fields)}."),
            "fields",
        )
    for name, spec in fields.items():
        _check_field(name, spec)


def _check_reader(reader: Any) -> None:
    if reader is None:
        return
    if not isinstance(reader, dict):
        raise _fail(f"'reader' must be an object {{section, header_line}} or null, not {_type_name(reader)}.", "reader")
    _check_keys(reader, READER_KEYS, "reader")
    _text(reader.get("section"), "reader.section", allow_null=True)
    line = reader.get("header_line")
    if line is not None and (not _whole_number(line) or line < 1):
        raise _fail(
            f"'reader.header_line' must be a line number (1 or more) or null, not {line!r:.60}.", "reader.header_line"
        )


def _check_filters(filters: Any) -> None:
    if filters is None:
        return
    if not isinstance(filters, list):
        raise _fail(f"'filters' must be a list of rules, not {_type_name(filters)}.", "filters")
    if len(filters) > MAX_FILTERS:
        raise _fail(f"'filters' has {len(filters)} rules; at most {MAX_FILTERS} are allowed.", "filters")
    for index, rule in enumerate(filters):
        where = f"filters[{index}]"
        if not isinstance(rule, dict):
            raise _fail(f"'{where}' must be an object {{column, op, values}}, not {_type_name(rule)}.", where)
        _check_keys(rule, FILTER_KEYS, where)
        _text(rule.get("column"), f"{where}.column")
        op = rule.get("op", "in")
        if op not in OPS:
            raise _fail(f"'{where}.op' must be one of {', '.join(OPS)}, not {op!r:.60}.", f"{where}.op")
        values = rule.get("values", [])
        if not isinstance(values, list):
            raise _fail(f"'{where}.values' must be a list, not {_type_name(values)}.", f"{where}.values")
        if len(values) > MAX_FILTER_VALUES:
            message = f"'{where}.values' has {len(values)} entries; at most {MAX_FILTER_VALUES} are allowed."
            raise _fail(message, f"{where}.values")
        for position, value in enumerate([*values, *([rule["value"]] if "value" in rule else [])]):
            path = f"{where}.values[{position}]" if position < len(values) else f"{where}.value"
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                raise _fail(f"'{path}' must be a text or a number, not {_type_name(value)}.", path)
            if isinstance(value, str):
                _text(value, path)


def _check_field(name: Any, spec: Any) -> None:
    where = f"fields.{name}"
    if not isinstance(spec, dict):
        raise _fail(f"'{where}' must be an object {{columns, converter, options}}, not {_type_name(spec)}.", where)
    _check_keys(spec, FIELD_KEYS, where)
    columns = spec.get("columns", [])
    if not isinstance(columns, list):
        raise _fail(f"'{where}.columns' must be a list of column names, not {_type_name(columns)}.", f"{where}.columns")
    for index, column in enumerate(columns):
        _text(column, f"{where}.columns[{index}]")
    converter = spec.get("converter", "text")
    options = spec.get("options")
    options = {} if options is None else options
    try:
        check_options(converter, options)
    except MappingError as exc:
        key = f"{where}.options" if isinstance(converter, str) and "option" in exc.details else f"{where}.converter"
        raise MappingError(
            f"Field '{name}': {exc.message}", details={"field": name, "key": key, **exc.details}
        ) from None
    confidence = spec.get("confidence")
    if confidence is not None and (isinstance(confidence, bool) or not isinstance(confidence, int | float)):
        raise _fail(f"'{where}.confidence' must be a number, not {_type_name(confidence)}.", f"{where}.confidence")
    if "reason" in spec:
        _text(spec["reason"], f"{where}.reason", allow_null=True)
