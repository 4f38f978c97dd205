"""Forms of the web UI: strategy upload, instance creation, and the config form generated from a
version's CONFIG_SCHEMA.

Forms only parse and present; the rules live in the services. The application errors the services
raise are put back on the form field the user typed into by `tenants.errors.form_add_error`
(`config_field_map` points `config.<key>` messages at the generated config fields).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from django import forms
from django.core.validators import FileExtensionValidator

CONFIG_PREFIX = "cfg__"
UPLOAD_KINDS = [
    ("single", "Single file (.py, tick style)"),
    ("bundle", "Bundle (entry.py + exit.py + config.json)"),
]
SLUG_HELP = "Lower-case letters, digits and dashes; how instances refer to the strategy (e.g. my-sma-cross)."


# A bundle's three files: (file input, text area) pairs, in entry, exit, config order.
BUNDLE_INPUTS = (
    ("entry_file", "entry_source"),
    ("exit_file", "exit_source"),
    ("config_file", "config_source"),
)


class StrategyUploadForm(forms.Form):
    """A new strategy (with `key`/`name`) or, with `new_version=True`, the next version of one."""

    kind = forms.ChoiceField(choices=UPLOAD_KINDS, widget=forms.RadioSelect, initial="single", label="Upload")
    key = forms.SlugField(max_length=64, help_text=SLUG_HELP)
    name = forms.CharField(max_length=120)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)
    # Single file: a .py upload, or the source pasted/edited in the text area (the error view fills it).
    file = forms.FileField(
        required=False,
        label="Strategy file (.py)",
        validators=[FileExtensionValidator(["py"])],
        widget=forms.ClearableFileInput(attrs={"accept": ".py,text/x-python"}),
    )
    source = forms.CharField(
        required=False,
        label="…or paste the source",
        widget=forms.Textarea(
            attrs={"rows": 14, "spellcheck": "false", "class": "mono", "data-code": "python"}
        ),
        help_text="Used when no file is chosen.",
    )
    entry_file = forms.FileField(
        required=False,
        label="entry.py file",
        validators=[FileExtensionValidator(["py"])],
        widget=forms.ClearableFileInput(attrs={"accept": ".py,text/x-python"}),
    )
    exit_file = forms.FileField(
        required=False,
        label="exit.py file",
        validators=[FileExtensionValidator(["py"])],
        widget=forms.ClearableFileInput(attrs={"accept": ".py,text/x-python"}),
    )
    config_file = forms.FileField(
        required=False,
        label="config.json file",
        validators=[FileExtensionValidator(["json"])],
        widget=forms.ClearableFileInput(attrs={"accept": ".json,application/json"}),
    )
    # A bundle's files may also be pasted/edited as text; a refused upload gives them back here,
    # so that nothing the user chose is lost (a browser never refills a file input).
    entry_source = forms.CharField(
        required=False,
        label="…or paste entry.py",
        widget=forms.Textarea(
            attrs={"rows": 10, "spellcheck": "false", "class": "mono", "data-code": "python"}
        ),
    )
    exit_source = forms.CharField(
        required=False,
        label="…or paste exit.py",
        widget=forms.Textarea(
            attrs={"rows": 8, "spellcheck": "false", "class": "mono", "data-code": "python"}
        ),
    )
    config_source = forms.CharField(
        required=False,
        label="…or paste config.json",
        widget=forms.Textarea(attrs={"rows": 8, "spellcheck": "false", "class": "mono", "data-code": "json"}),
    )
    thesis = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Plain English: why does this make money? Required for bundles (or put it in config.json).",
    )
    notes = forms.CharField(max_length=200, required=False, label="Version notes")

    def __init__(self, *args: Any, new_version_of: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.definition = new_version_of
        # Each file is required, as a file or as text: neither input alone is "optional".
        for name in ("file", "source", *(f for pair in BUNDLE_INPUTS for f in pair)):
            self.fields[name].either_or = True  # type: ignore[attr-defined]
        if new_version_of is not None:
            # A new version keeps the definition's identity and style.
            for name in ("key", "name", "description"):
                del self.fields[name]
            kind = "bundle" if new_version_of.style == "signal_bundle" else "single"
            self.fields["kind"].initial = kind
            self.fields["kind"].widget = forms.HiddenInput()
            self.fields["thesis"].initial = new_version_of.thesis

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if self.definition is not None:
            data["kind"] = "bundle" if self.definition.style == "signal_bundle" else "single"
        kind = data.get("kind")
        if kind == "single":
            if not data.get("file") and not (data.get("source") or "").strip():
                self.add_error("file", "Choose a .py file or paste the source.")
        elif kind == "bundle":
            for file_name, text_name in BUNDLE_INPUTS:
                if not data.get(file_name) and not (data.get(text_name) or "").strip():
                    self.add_error(
                        file_name, "This file is required for a bundle: choose it or paste it below."
                    )
        return data

    def keep_chosen_files(self) -> None:
        """Copy every chosen file into its text area, so a refused upload re-renders with it."""
        if not self.is_bound:
            return
        data = self.data.copy()
        for file_name, text_name in (("file", "source"), *BUNDLE_INPUTS):
            upload = self.files.get(file_name)
            if upload is None:
                continue
            try:
                upload.seek(0)
                text = upload.read().decode("utf-8")
            except (UnicodeDecodeError, ValueError, OSError):
                continue  # not text: the error says so; nothing sensible to show
            data[text_name] = text
        self.data = data

    @property
    def style(self) -> str:
        return "signal_bundle" if self.cleaned_data.get("kind") == "bundle" else "tick"

    def source_field(self) -> str:
        """Which field carried the single-file source (errors are shown there)."""
        return "file" if self.cleaned_data.get("file") else "source"

    def upload_kwargs(self) -> dict[str, Any]:
        """The store service's arguments: raw bytes/text per logical file."""
        data = self.cleaned_data
        if self.style == "tick":
            upload = data.get("file")
            return {"source": upload.read() if upload else data.get("source", "")}

        def read(file_name: str, text_name: str) -> Any:
            upload = data.get(file_name)
            return upload.read() if upload else data.get(text_name, "")

        return {
            "source": read(*BUNDLE_INPUTS[0]),
            "exit_source": read(*BUNDLE_INPUTS[1]),
            "config": read(*BUNDLE_INPUTS[2]),
        }


def _choice_map(choices: Iterable[Any]) -> dict[str, Any]:
    return {str(c): c for c in choices}


def config_fields(
    schema: Mapping[str, Mapping[str, Any]], values: Mapping[str, Any] | None = None
) -> dict[str, forms.Field]:
    """Form fields for a CONFIG_SCHEMA: type, min/max, choices, default and description.

    Field names carry CONFIG_PREFIX so they never collide with the instance's own fields;
    `values` (an instance's current config) wins over the schema's defaults as initial values.
    """
    values = values or {}
    fields: dict[str, forms.Field] = {}
    for name, spec in schema.items():
        ftype = spec.get("type")
        default = spec.get("default")
        initial = values.get(name, default)
        label = spec.get("label") or name.replace("_", " ").capitalize()
        help_parts = [spec.get("description", "")]
        common: dict[str, Any] = {"label": label, "initial": initial}
        field: forms.Field
        if ftype == "int":
            field = forms.IntegerField(min_value=spec.get("min"), max_value=spec.get("max"), **common)
        elif ftype == "float":
            field = forms.FloatField(
                min_value=spec.get("min"),
                max_value=spec.get("max"),
                widget=forms.NumberInput(attrs={"step": "any"}),
                **common,
            )
        elif ftype == "bool":
            field = forms.BooleanField(required=False, **common)
        elif ftype == "choice":
            mapping = _choice_map(spec.get("choices", []))
            field = forms.TypedChoiceField(
                choices=[(k, k) for k in mapping],
                coerce=lambda v, m=mapping: m[v],
                **{**common, "initial": str(initial)},
            )
        else:
            field = forms.CharField(max_length=spec.get("max_length", 1000), required=False, **common)
        bounds = []
        if spec.get("min") is not None:
            bounds.append(f"min {spec['min']}")
        if spec.get("max") is not None:
            bounds.append(f"max {spec['max']}")
        if bounds:
            help_parts.append(", ".join(bounds))
        help_parts.append(f"default {json.dumps(default)}")
        if spec.get("live"):
            help_parts.append("changes apply live, without a reload")
        field.help_text = " · ".join(p for p in help_parts if p)
        field.widget.attrs.setdefault("data-config-field", name)
        fields[CONFIG_PREFIX + name] = field
    return fields


class ConfigFormMixin:
    """Adds the generated config fields and reads them back as a plain config dict."""

    fields: dict[str, forms.Field]
    cleaned_data: dict[str, Any]

    def add_config_fields(self, schema: Mapping[str, Any], values: Mapping[str, Any] | None = None) -> None:
        self.schema = dict(schema or {})
        self.fields.update(config_fields(self.schema, values))

    def config_field_names(self) -> list[str]:
        return [n for n in self.fields if n.startswith(CONFIG_PREFIX)]

    def config(self) -> dict[str, Any]:
        return {
            n.removeprefix(CONFIG_PREFIX): self.cleaned_data[n]
            for n in self.config_field_names()
            if n in self.cleaned_data
        }


class AllocationFields(forms.Form):
    """Capital allocation and execution frequency (shared by create and the detail page's config form)."""

    total_capital = forms.DecimalField(
        min_value=Decimal("0"), decimal_places=2, max_digits=18, initial=Decimal("1000")
    )
    capital_per_trade = forms.DecimalField(
        min_value=Decimal("0"), decimal_places=2, max_digits=18, initial=Decimal("100")
    )
    max_positions = forms.IntegerField(min_value=1, initial=1)
    max_position_size = forms.DecimalField(
        min_value=Decimal("0"), decimal_places=2, max_digits=18, initial=Decimal("500")
    )
    max_daily_loss = forms.DecimalField(
        min_value=Decimal("0"), decimal_places=2, max_digits=18, initial=Decimal("100")
    )
    sizing_method = forms.ChoiceField(
        choices=[
            ("fixed", "Fixed"),
            ("kelly", "Kelly (from confidence)"),
            ("percent_capital", "Percent of capital"),
        ],
        initial="fixed",
    )
    frequency_seconds = forms.IntegerField(
        min_value=1,
        initial=5,
        label="Run every (seconds)",
        help_text="How often the strategy runs; at least 1 second.",
    )
    trigger = forms.ChoiceField(
        choices=[
            ("interval", "Every N seconds"),
            ("quote", "On every quote of its market"),
        ],
        initial="interval",
        required=False,  # omitted: unchanged (interval for a new instance)
        label="Runs",
        help_text="On every quote: at most one run in flight, the newest quote wins.",
    )

    ALLOCATION = (
        "total_capital",
        "capital_per_trade",
        "max_positions",
        "max_position_size",
        "max_daily_loss",
        "sizing_method",
        "frequency_seconds",
        "trigger",
    )

    def allocation(self) -> dict[str, Any]:
        # An empty optional field (None, "") means "not given": the service keeps or defaults it.
        return {n: v for n in self.ALLOCATION if (v := self.cleaned_data.get(n)) not in (None, "")}


class InstanceCreateForm(ConfigFormMixin, AllocationFields):
    name = forms.CharField(max_length=120)
    strategy = forms.ChoiceField(
        label="Strategy", help_text="Your own strategies and the built-in catalog, by key."
    )
    version = forms.TypedChoiceField(
        coerce=int, label="Version", help_text="Pinned: an instance never changes version."
    )
    account = forms.ChoiceField(label="Account")
    market = forms.ChoiceField(label="Market")

    field_order = ["name", "strategy", "version", "account", "market"]

    def __init__(
        self,
        *args: Any,
        strategies: Iterable[Any] = (),
        versions: Iterable[Any] = (),
        accounts: Iterable[Any] = (),
        markets: Iterable[Any] = (),
        schema: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.fields["strategy"].choices = [("", "— choose a strategy —")] + [
            (s.key, f"{s.key} — {s.name}{' (built in)' if s.tenant_id is None else ''}") for s in strategies
        ]
        self.fields["version"].choices = [
            (v.number, f"v{v.number} · {v.created_at:%Y-%m-%d %H:%M}") for v in versions
        ]
        self.fields["account"].choices = [(str(a.id), f"{a.name} ({a.kind.upper()})") for a in accounts]
        self.fields["market"].choices = [(str(m.id), str(m)) for m in markets]
        self.add_config_fields(schema or {})
        # Strategy changes re-render the version and config sections through htmx.
        self.fields["strategy"].widget.attrs.update(
            {
                "hx-get": "",
                "hx-target": "#strategy-dependent",
                "hx-select": "#strategy-dependent",
                "hx-swap": "outerHTML",
                "hx-include": "this",
                "hx-trigger": "change",
            }
        )
        self.fields["version"].widget.attrs.update(
            {
                "hx-get": "",
                "hx-target": "#strategy-dependent",
                "hx-select": "#strategy-dependent",
                "hx-swap": "outerHTML",
                "hx-include": "[name=strategy],[name=version]",
                "hx-trigger": "change",
            }
        )


class InstanceConfigForm(ConfigFormMixin, AllocationFields):
    """The detail page's editable part: the generated config plus allocation and frequency."""

    name = forms.CharField(max_length=120)
    field_order = ["name"]

    def __init__(
        self,
        *args: Any,
        schema: Mapping[str, Any] | None = None,
        values: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.add_config_fields(schema or {}, values)


# --- mapping service errors onto forms --------------------------------------------------------


def config_field_map(form: forms.Form) -> dict[str, str]:
    """Where an application error's `config.<key>` messages go: the generated config fields."""
    return {
        f"config.{name[len(CONFIG_PREFIX) :]}": name for name in form.fields if name.startswith(CONFIG_PREFIX)
    }


class LiveRequestForm(forms.Form):
    """Request live trading for a paper instance: which of the tenant's live accounts, and a note."""

    live_account = forms.ChoiceField(
        label="Live account", help_text="The approved copy of this instance will trade on this account."
    )
    note = forms.CharField(
        max_length=500,
        required=False,
        label="Note to the reviewer (optional)",
        widget=forms.Textarea(attrs={"rows": 2}),
    )

    def __init__(self, *args: Any, live_accounts: list[Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["live_account"].choices = [(str(a.id), a.name) for a in live_accounts]
