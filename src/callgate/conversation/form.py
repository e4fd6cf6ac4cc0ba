"""The lead form: which fields a call must collect, how to ask, and how to check answers.

A form is a TOML file (see ``default_form.toml``), loaded once at server start-up with
:func:`load_form`; a bad file raises :class:`FormError` naming the file, field and problem.
:func:`normalize` turns what a caller said into a canonical value (E.164 phone, ISO 8601
date) or an :class:`Invalid` with a reason. :class:`LeadState` holds one call's answers;
it does no I/O and reads no clock (``now`` is passed in).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any, Literal, get_args

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from callgate.conversation.extract import HEBREW_RE, emails, parse_when, phone_runs

FieldType = Literal["name", "phone", "email", "date", "time", "datetime", "text", "choice"]
FIELD_TYPES: tuple[str, ...] = get_args(FieldType)
_FIELD_KEYS = {"name", "type", "required", "confirm", "prompt", "label", "choices",
               "min_length", "max_length", "pattern"}  # fmt: skip
_NAME_MAX_WORDS = 5
_NOT_NAME_WORDS = {"why", "what", "who", "how", "need", "don't", "no", "yes", "sorry", "the",
                   "למה", "מה", "מי", "איך", "לא", "כן", "סליחה"}  # fmt: skip


class FormError(ValueError):
    """A form file is unusable; the message names the file, the field and the problem."""


@dataclass(frozen=True)
class FormField:
    """One field of the form. ``prompt`` and ``label`` map language code to text.

    ``label`` is the field's short name used inside sentences ("may I have your *phone
    number*?"); it defaults to the field name with spaces. ``pattern`` must fully match
    the normalized value.
    """

    name: str
    type: FieldType
    required: bool
    prompt: dict[str, str]
    label: dict[str, str]
    confirm: bool = False
    choices: tuple[str, ...] = ()
    min_length: int = 1
    max_length: int = 500
    pattern: re.Pattern[str] | None = None


@dataclass(frozen=True)
class Form:
    """A whole form: fields in asking order plus per-language greeting and closing lines."""

    fields: tuple[FormField, ...]
    greeting: dict[str, str]
    closing: dict[str, str]
    languages: tuple[str, ...]

    def field(self, name: str) -> FormField:
        """The field called ``name``; raises KeyError if there is none."""
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)


@dataclass(frozen=True)
class Normalized:
    """A valid answer in canonical form (E.164, ISO 8601, title-cased name...)."""

    value: str


@dataclass(frozen=True)
class Invalid:
    """An answer that failed validation; ``reason`` is a short English explanation."""

    reason: str


def _text_map(where: str, raw: Any, languages: tuple[str, ...], what: str) -> dict[str, str]:
    if not isinstance(raw, dict) or not all(isinstance(v, str) and v for v in raw.values()):
        raise FormError(f"{where}: {what} must be a table of language = text")
    missing = [lang for lang in languages if lang not in raw]
    if missing:
        raise FormError(f"{where}: missing {what} for language(s) {', '.join(missing)}")
    return dict(raw)


def _parse_field(where: str, raw: dict[str, Any], languages: tuple[str, ...]) -> FormField:
    unknown = set(raw) - _FIELD_KEYS
    if unknown:
        raise FormError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    ftype = raw.get("type")
    if ftype not in FIELD_TYPES:
        raise FormError(f"{where}: unknown type {ftype!r} (expected one of {FIELD_TYPES})")
    for key in ("required", "confirm"):
        if not isinstance(raw.get(key, False), bool):
            raise FormError(f"{where}: {key} must be true or false")
    if "prompt" not in raw:
        raise FormError(f"{where}: missing prompt")
    prompt = _text_map(where, raw["prompt"], languages, "prompt")
    default_label = {lang: raw["name"].replace("_", " ") for lang in languages}
    label = _text_map(where, raw.get("label", default_label), languages, "label")
    choices = raw.get("choices", [])
    if ftype == "choice" and not (choices and all(isinstance(c, str) for c in choices)):
        raise FormError(f"{where}: a choice field needs a non-empty list of choices")
    lengths = (raw.get("min_length", 1), raw.get("max_length", 500))
    if not all(isinstance(n, int) and n >= 0 for n in lengths) or lengths[0] > lengths[1]:
        raise FormError(f"{where}: min_length/max_length must be integers, min <= max")
    pattern = None
    if "pattern" in raw:
        try:
            pattern = re.compile(raw["pattern"])
        except (re.error, TypeError) as exc:
            raise FormError(f"{where}: bad regex pattern {raw['pattern']!r}: {exc}") from exc
    return FormField(
        name=raw["name"], type=ftype, required=raw.get("required", False), prompt=prompt,
        label=label, confirm=raw.get("confirm", False), choices=tuple(choices),
        min_length=lengths[0], max_length=lengths[1], pattern=pattern,
    )  # fmt: skip


def parse_form(data: dict[str, Any], source: str = "<form>") -> Form:
    """Build a :class:`Form` from parsed TOML; ``source`` names the file in errors."""
    meta = data.get("form", {})
    languages = tuple(meta.get("languages", ["en"]))
    if not languages or not all(isinstance(lang, str) for lang in languages):
        raise FormError(f"{source}: [form] languages must be a list of language codes")
    greeting = _text_map(f"{source}: [form]", meta.get("greeting"), languages, "greeting")
    closing = _text_map(f"{source}: [form]", meta.get("closing"), languages, "closing")
    raw_fields = data.get("fields")
    if not isinstance(raw_fields, list) or not raw_fields:
        raise FormError(f"{source}: the form needs at least one [[fields]] entry")
    fields: list[FormField] = []
    for i, raw in enumerate(raw_fields):
        name = raw.get("name") if isinstance(raw, dict) else None
        if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", name):
            raise FormError(f"{source}: field #{i + 1}: name must be lower_snake_case")
        where = f"{source}: field {name!r}"
        if any(f.name == name for f in fields):
            raise FormError(f"{where}: duplicate field")
        fields.append(_parse_field(where, raw, languages))
    return Form(fields=tuple(fields), greeting=greeting, closing=closing, languages=languages)


def load_form(path: Path | None = None) -> Form:
    """Load a form file; None loads the built-in ``default_form.toml``.

    Raises :class:`FormError` for a missing, unreadable, non-TOML or invalid file.
    """
    if path is None:
        source = "default_form.toml"
        text = resources.files("callgate.conversation").joinpath(source).read_text("utf-8")
    else:
        source = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise FormError(f"{source}: cannot read: {exc}") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise FormError(f"{source}: not valid TOML: {exc}") from exc
    return parse_form(data, source)


def _normalize_phone(raw: str, region: str) -> Normalized | Invalid:
    runs = phone_runs(raw) or (re.sub(r"[^\d+]", "", raw),)
    for candidate in runs:
        try:
            number = phonenumbers.parse(candidate, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            fmt = phonenumbers.PhoneNumberFormat.E164
            return Normalized(phonenumbers.format_number(number, fmt))
    return Invalid("not a valid phone number")


def _normalize_name(raw: str) -> Normalized | Invalid:
    words = [w.strip(".,!?;:") for w in raw.split()]
    words = [w for w in words if w]
    if not words or len(words) > _NAME_MAX_WORDS:
        return Invalid("not a name")
    if any(w.lower() in _NOT_NAME_WORDS or not re.fullmatch(r"[^\W\d_][\w'\-]*", w) for w in words):
        return Invalid("not a name")
    if HEBREW_RE.search(raw):
        return Normalized(" ".join(words))
    # Title-case only words the transcriber wrote in one case, so "McDonald" survives.
    return Normalized(" ".join(w.title() if w.islower() or w.isupper() else w for w in words))


def normalize(
    field: FormField, raw: str, *, region: str = "US", now: datetime | None = None
) -> Normalized | Invalid:
    """Validate and canonicalize one answer for ``field``.

    ``region`` (ISO 3166 alpha-2) applies to phone numbers said without "+"; ``now`` is
    the reference for relative dates and is required for date/time fields.
    """
    raw = " ".join(raw.split())
    result: Normalized | Invalid
    if field.type == "phone":
        result = _normalize_phone(raw, region)
    elif field.type == "email":
        try:
            spoken = emails(raw)
            text = spoken[0] if spoken else raw.strip(" .,")
            email = validate_email(text, check_deliverability=False).normalized
            result = Normalized(email)
        except EmailNotValidError as exc:
            result = Invalid(f"not a valid email address: {exc}")
    elif field.type in ("date", "time", "datetime"):
        if now is None:
            raise ValueError("normalize needs now= for date and time fields")
        when = parse_when(raw, now)
        if when is None or (field.type == "date" and not when.has_date):
            result = Invalid("no date found")
        elif field.type == "time" and not when.has_time:
            result = Invalid("no time found")
        elif field.type == "date":
            result = Normalized(when.value.date().isoformat())
        elif field.type == "time":
            result = Normalized(when.value.strftime("%H:%M"))
        elif when.has_time:
            result = Normalized(when.value.isoformat(timespec="minutes"))
        else:
            result = Normalized(when.value.date().isoformat())
    elif field.type == "name":
        result = _normalize_name(raw)
    elif field.type == "choice":
        low = raw.lower()
        hits = [c for c in field.choices if re.search(rf"(?<!\w){re.escape(c.lower())}(?!\w)", low)]
        result = Normalized(hits[0]) if len(hits) == 1 else Invalid("not one of the choices")
    else:
        text = raw.strip()
        if len(text) < field.min_length:
            result = Invalid(f"shorter than {field.min_length} characters")
        elif len(text) > field.max_length:
            result = Invalid(f"longer than {field.max_length} characters")
        else:
            result = Normalized(text)
    if (
        isinstance(result, Normalized)
        and field.pattern
        and not field.pattern.fullmatch(result.value)
    ):
        return Invalid("does not match the required pattern")
    return result


@dataclass
class LeadState:
    """One call's answers. Sans-I/O: feed raw answers with :meth:`set`, read the rest.

    Setting a new value for a ``confirm`` field clears its confirmation.
    """

    form: Form
    region: str = "US"
    values: dict[str, str] = field(default_factory=dict)
    confirmed: set[str] = field(default_factory=set)
    rejected: dict[str, str] = field(default_factory=dict)
    """Last raw answer of fields that never validated, kept for the CRM record."""

    def set(self, name: str, raw: str, *, now: datetime | None = None) -> Normalized | Invalid:
        """Validate ``raw`` for field ``name``; store it if valid. KeyError if no such field."""
        result = normalize(self.form.field(name), raw, region=self.region, now=now)
        if isinstance(result, Normalized):
            if self.values.get(name) != result.value:
                self.confirmed.discard(name)
            self.values[name] = result.value
            self.rejected.pop(name, None)
        return result

    def reject(self, name: str, raw: str) -> None:
        """Record an answer that never validated (the agent gave up asking)."""
        self.rejected[name] = raw

    def confirm(self, name: str) -> None:
        """Mark a stored value as read back and confirmed; ValueError if nothing is stored."""
        if name not in self.values:
            raise ValueError(f"cannot confirm {name!r}: no value")
        self.confirmed.add(name)

    def clear(self, name: str) -> None:
        """Forget a value (the caller said the read-back was wrong)."""
        self.values.pop(name, None)
        self.confirmed.discard(name)

    def needs_confirmation(self, name: str) -> bool:
        """True if the field has a value that must still be read back."""
        f = self.form.field(name)
        return f.confirm and name in self.values and name not in self.confirmed

    def missing_required(self) -> list[str]:
        """Required fields, in form order, without a valid (and, if needed, confirmed) value."""
        return [
            f.name
            for f in self.form.fields
            if f.required and (f.name not in self.values or self.needs_confirmation(f.name))
        ]

    @property
    def complete(self) -> bool:
        """Every required field is collected and confirmed."""
        return not self.missing_required()

    def as_dict(self) -> dict[str, str]:
        """Normalized values by field name, in form order."""
        return {f.name: self.values[f.name] for f in self.form.fields if f.name in self.values}
