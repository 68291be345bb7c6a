"""Export and import of format definitions (django-import-export), to move approved formats between sites.

A format is identified by (target, fingerprint): importing creates the formats that are new and updates
the name and mapping of those that exist. Every imported mapping is validated like an admin's edit;
a row that fails is reported with the reason and nothing of it is written. Status changes of existing
formats are refused: approving or rejecting goes through the review screen, where staged rows follow.
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from import_export import fields, resources, widgets

from audit.services import record
from config.errors import AppError
from formats.fingerprint import fingerprint
from formats.models import CsvFormat, FormatStatus
from formats.services import mapping_validate

# The spreadsheet-safe cell rule is shared with every CSV the product hands out (imports/web/exports.py);
# the admin's export is an interface, so it may use it (DESIGN.md: interfaces sit on top of the apps).
from imports.web.exports import FORMULA_PREFIXES, safe_cell

EXPORT_FIELDS = ("name", "target", "header", "columns", "fingerprint", "status", "mapping")


def unescape_cell(value: Any) -> Any:
    """Undo `safe_cell` on import: "'=x" was exported from "=x"."""
    if isinstance(value, str) and value.startswith("'") and value[1:].startswith(FORMULA_PREFIXES):
        return value[1:]
    return value


class CsvFormatResource(resources.ModelResource):
    header = fields.Field(attribute="header", column_name="header", widget=widgets.JSONWidget())
    columns = fields.Field(attribute="columns", column_name="columns", widget=widgets.JSONWidget())
    mapping = fields.Field(attribute="mapping", column_name="mapping", widget=widgets.JSONWidget())

    class Meta:
        model = CsvFormat
        fields = EXPORT_FIELDS
        export_order = EXPORT_FIELDS
        import_id_fields = ("target", "fingerprint")
        skip_unchanged = True
        report_skipped = True
        clean_model_instances = True

    def export_field(self, field: Any, instance: Any, **kwargs: Any) -> Any:
        # A format name comes from an uploaded file's name: a spreadsheet must not run it as a formula.
        return safe_cell(super().export_field(field, instance, **kwargs))

    def before_import_row(self, row: Any, **kwargs: Any) -> None:
        for key in list(row.keys()):
            row[key] = unescape_cell(row[key])

    def import_instance(self, instance: CsvFormat, row: Any, **kwargs: Any) -> None:
        # Remember what the format was before this row touched it (None for a new one).
        instance._import_previous_status = (
            CsvFormat.objects.filter(pk=instance.pk).values_list("status", flat=True).first() if instance.pk else None
        )
        super().import_instance(instance, row, **kwargs)

    def validate_instance(
        self, instance: CsvFormat, import_validation_errors: dict | None = None, validate_unique: bool = True
    ) -> None:
        errors: dict[str, list[str]] = dict(import_validation_errors or {})
        previous = getattr(instance, "_import_previous_status", None)
        if instance.status not in FormatStatus.values:
            errors["status"] = [f"Unknown status {instance.status!r}; use one of {', '.join(FormatStatus.values)}."]
        elif previous is not None and previous != instance.status:
            errors["status"] = [
                f"This format exists here as {previous} and the file says {instance.status}: approve or "
                "reject it on the review screen instead (its staged rows must follow the decision)."
            ]
        if not isinstance(instance.header, list) or not isinstance(instance.columns, list):
            errors["header"] = ["header and columns must be JSON lists of column names."]
        else:
            section = (
                ((instance.mapping or {}).get("reader") or {}).get("section")
                if isinstance(instance.mapping, dict)
                else None
            )
            if fingerprint(instance.header, section=section) != instance.fingerprint:
                errors["fingerprint"] = ["The fingerprint does not match the header: the row was edited by hand?"]
            try:
                instance.mapping = mapping_validate(
                    target=instance.target, mapping=instance.mapping, columns=instance.columns
                )
            except AppError as exc:
                errors["mapping"] = [exc.message]
        super().validate_instance(instance, errors, validate_unique)

    def before_save_instance(self, instance: CsvFormat, row: Any, **kwargs: Any) -> None:
        user = kwargs.get("user")
        is_new = instance.pk is None
        if is_new:
            instance.suggestion = instance.mapping
            instance.name = (instance.name or "imported format")[:200]
            if instance.status == FormatStatus.APPROVED:
                instance.approved_by = user if getattr(user, "is_authenticated", False) else None
                instance.approved_at = timezone.now()
        instance._change_reason = "imported" if is_new else "mapping updated by import"
        if getattr(user, "is_authenticated", False):
            instance._history_user = user

    def after_save_instance(self, instance: CsvFormat, row: Any, **kwargs: Any) -> None:
        if kwargs.get("dry_run"):
            return
        user = kwargs.get("user")
        created = getattr(instance, "_import_previous_status", None) is None
        record(
            action="format.imported",
            actor=user,
            obj=instance,
            summary=f"Format '{instance.name}' ({instance.status}) {'created' if created else 'updated'} by import",
            details={"fingerprint": instance.fingerprint, "mapping": instance.mapping, "created": created},
        )


def formats_export(*, queryset: Any = None, file_format: str = "json") -> str:
    """The formats as text (json or csv) in the shape `CsvFormatResource` imports."""
    dataset = CsvFormatResource().export(queryset=queryset)
    return dataset.export(file_format)


def formats_import(*, text: str, file_format: str = "json", actor: Any = None, dry_run: bool = False) -> Any:
    """Import formats from exported text; returns import-export's Result (check `has_errors()`)."""
    import tablib

    dataset = tablib.Dataset().load(text, format=file_format)
    # One transaction (import-export's use_transactions): a file with one bad row writes nothing.
    return CsvFormatResource().import_data(
        dataset, dry_run=dry_run, raise_errors=False, rollback_on_validation_errors=True, user=actor
    )
