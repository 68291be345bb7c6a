from django import forms

from formats.targets import get_target
from imports.targets import DEFAULT_TARGET, WRITERS

# What the file picker offers (the server decides by content, whatever the name; see imports/sheets/sniff.py).
ACCEPT = ",".join(
    [
        ".csv",
        ".txt",
        ".tsv",
        ".xlsx",
        ".xlsm",
        ".xls",
        ".ods",
        ".json",
        ".ndjson",
        ".jsonl",
        "text/csv",
        "application/json",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/vnd.ms-excel",
        "application/vnd.oasis.opendocument.spreadsheet",
    ]
)


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("widget", MultipleFileInput(attrs={"accept": ACCEPT}))
        super().__init__(*args, **kwargs)

    def clean(self, data: object, initial: object = None) -> list:
        single = super().clean
        if isinstance(data, list | tuple):
            return [single(item, initial) for item in data]
        return [single(data, initial)]


class UploadForm(forms.Form):
    file = MultipleFileField(label="Files")
    dedupe = forms.BooleanField(required=False, initial=True, label="Skip trades I already have (recommended)")
    target = forms.ChoiceField(
        choices=[(name, get_target(name).label) for name in WRITERS],
        initial=DEFAULT_TARGET,
        required=False,
        label="The files hold",
    )

    def clean_target(self) -> str:
        """Trade orders unless the form names another target (older pages and scripts send none)."""
        return self.cleaned_data.get("target") or DEFAULT_TARGET
