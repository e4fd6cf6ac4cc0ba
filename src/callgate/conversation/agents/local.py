"""A form-filling agent that needs no cloud: rules over :mod:`extract` and :class:`LeadState`.

It greets, asks each missing required field in form order, takes any field the caller
volunteers, reads back ``confirm`` fields and handles yes/no, re-asks an invalid answer at
most ``max_attempts`` times, asks optional fields once, and closes with the form's closing
line and ``EndCall("lead_complete")``. A goodbye before the lead is complete gets one
"before you go" question; a second goodbye ends the call with ``"caller_goodbye"``.

Pure logic: time comes from the ``clock`` the caller passes (only for relative dates).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

import phonenumbers

from callgate.conversation.agents.base import AgentReply, EndCall
from callgate.conversation.extract import Candidates, caller_emails, detect_language, extract
from callgate.conversation.form import Form, FormField, LeadState, Normalized

log = logging.getLogger("callgate.agent")

_PHRASES: dict[str, dict[str, str]] = {
    "en": {
        "readback": "I have your {label} as {value}. Is that right?",
        "sorry_wrong": "Sorry about that.",
        "give_up": "No problem, let's move on.",
        "still_need": "I still need your {label}.",
        "before_go": "Before you go, may I have your {label}?",
        "bye": "Thank you for calling. Goodbye!",
        "retry_phone": "Sorry, that doesn't sound like a complete phone number.",
        "retry_email": "Sorry, I couldn't catch a valid email address.",
        "retry_when": "Sorry, I didn't catch a date and time.",
        "retry_name": "Sorry, I didn't catch your name.",
        "retry_text": "Sorry, could you tell me a bit more?",
        "retry_choice": "Sorry, please choose one of: {choices}.",
        "at": "at", "dot": "dot", "plus": "plus",
    },
    "he": {
        "readback": "רשמתי את {label}: {value}. האם זה נכון?",
        "sorry_wrong": "סליחה על הטעות.",
        "give_up": "אין בעיה, נמשיך הלאה.",
        "still_need": "אני עדיין צריכה את {label}.",
        "before_go": "לפני שנסיים, אפשר לקבל את {label} שלך?",
        "bye": "תודה שהתקשרת, להתראות!",
        "retry_phone": "סליחה, זה לא נשמע כמו מספר טלפון מלא.",
        "retry_email": "סליחה, לא הצלחתי לקלוט כתובת אימייל תקינה.",
        "retry_when": "סליחה, לא הבנתי את התאריך והשעה.",
        "retry_name": "סליחה, לא קלטתי את השם.",
        "retry_text": "סליחה, אפשר לפרט קצת יותר?",
        "retry_choice": "סליחה, אפשר לבחור אחת מהאפשרויות: {choices}.",
        "at": "שטרודל", "dot": "נקודה", "plus": "פלוס",
    },
}  # fmt: skip
_REPHRASED: dict[str, dict[str, str]] = {
    "en": {
        "lead": "Let me put it another way.",
        "phone": "Could you say your phone number slowly, one digit at a time?",
        "email": "Could you spell your email address for me, letter by letter?",
        "name": "Could you tell me your first name, and then your last name?",
        "datetime": "What day would suit you, and at what time?",
        "date": "What day would suit you?",
        "time": "At what time would suit you?",
    },
    "he": {
        "lead": "אנסח את זה אחרת.",
        "phone": "אפשר להגיד את מספר הטלפון לאט, ספרה אחרי ספרה?",
        "email": "אפשר לאיית את כתובת האימייל, אות אחרי אות?",
        "name": "מה השם הפרטי שלך, ומה שם המשפחה?",
        "datetime": "באיזה יום נוח לך, ובאיזו שעה?",
        "date": "באיזה יום נוח לך?",
        "time": "באיזו שעה נוח לך?",
    },
}  # fmt: skip
"""How the next question is asked after the loop rule said the agent repeats itself."""
_RETRY_KEY = {"phone": "retry_phone", "email": "retry_email", "date": "retry_when",
              "time": "retry_when", "datetime": "retry_when", "name": "retry_name",
              "text": "retry_text", "choice": "retry_choice"}  # fmt: skip
_HE_DAYS = ("שני", "שלישי", "רביעי", "חמישי", "שישי", "שבת", "ראשון")  # Monday first
_HE_MONTHS = ("ינואר", "פברואר", "מרץ", "אפריל", "מאי", "יוני", "יולי", "אוגוסט", "ספטמבר",
              "אוקטובר", "נובמבר", "דצמבר")  # fmt: skip
_MAX_BARE_NAME_WORDS = 4
STT_PROMPTS: dict[str, str] = {
    "phone": "My number is 212-555-0100.",
    "email": "{name}Email, spoken: name dot surname at example dot com.",
}
"""What the transcriber is told before the caller answers a phone or e-mail question
(English; Whisper's ``initial_prompt``). Measured with benchmarks/run_speech_benchmark.py:
the phone prompt makes tiny.en write digit groups ("646-555-3412") instead of dropping
repeated digits; the e-mail prompt makes it write "dot" and "at" as words, which
:func:`extract.emails` reads, and the caller's name in it spells the name's parts."""


class LocalFormAgent:
    """Fills a :class:`Form` by rules. Implements the ``Agent`` protocol.

    ``language`` fixes the language ("en", "he"); None detects it from the caller's first
    turn (Hebrew letters -> "he") and greets in ``default_language``. ``region`` is the
    ISO 3166 code for phone numbers said without "+". Read ``lead`` for the result.
    """

    def __init__(
        self,
        form: Form,
        *,
        language: str | None = None,
        default_language: str = "en",
        region: str = "US",
        max_attempts: int = 2,
        clock: Callable[[], datetime] = datetime.now,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        self.form = form
        self.lead = LeadState(form, region=region)
        self.region = region
        self.language = language or default_language
        self._language_locked = language is not None
        self._max_attempts = max_attempts
        self._clock = clock
        self._asking: str | None = None
        self._pending_confirm: str | None = None
        self._attempts: dict[str, int] = {}
        self._asked_optional: set[str] = set()
        self._skipped: set[str] = set()
        self._goodbye_warned = False
        self._ended: AgentReply | None = None
        self._rephrase = False

    # --- Agent protocol -----------------------------------------------------------------

    async def start(self) -> AgentReply:
        """Greeting plus the first question."""
        return self._next([self._form_text(self.form.greeting)], {})

    async def on_caller_turn(self, text: str) -> AgentReply:
        """Take what the caller said, then ask the next thing (or close)."""
        confirmed_before = set(self.lead.confirmed)
        reply = self._turn(text)
        if confirmed := frozenset(self.lead.confirmed - confirmed_before):
            reply = replace(reply, confirmed=confirmed)
        return reply

    def _turn(self, text: str) -> AgentReply:
        if self._ended is not None:
            # The caller spoke after the goodbye (it was cut off): say it again and end again.
            return replace(self._ended, field_updates={})
        if not self._language_locked and (lang := detect_language(text)):
            self.language, self._language_locked = lang, True
        before = self.lead.as_dict()
        c = extract(text, now=self._clock())
        parts: list[str] = []
        asked = self._asking  # None while a read-back is pending
        if self._pending_confirm is not None:
            self._answer_readback(self._pending_confirm, c, parts)
        volunteered = self._take_volunteered(c)
        if asked is not None and not (volunteered and self.form.field(asked).type == "text"):
            # (A turn that gave another field is not also the free-text answer.)
            self._answer_question(self.form.field(asked), c, parts)
        after = self.lead.as_dict()
        updates = {k: v for k, v in after.items() if before.get(k) != v}
        if c.goodbye and self.lead.complete:
            closing = self._form_text(self.form.closing)
            return self._end(AgentReply(closing, self.language, updates, EndCall("lead_complete")))
        if c.goodbye:
            missing = self._first_missing()
            if not self._goodbye_warned and missing is not None:
                self._goodbye_warned = True
                return self._before_you_go(missing, updates)
            return self._end(
                AgentReply(self._phrase("bye"), self.language, updates, EndCall("caller_goodbye"))
            )
        return self._next(parts, updates)

    def stt_prompt(self) -> str | None:
        """Context for the transcriber about the answer expected next (None: nothing).

        English only: the prompts are English text, and the local transcriber is too.
        """
        name = self._pending_confirm or self._asking
        if self.language != "en" or name is None:
            return None
        return stt_prompt_for(self.form.field(name).type, self._caller_name())

    def _caller_name(self) -> str:
        """The caller's name as stored so far ("" before they gave it)."""
        for field in self.form.fields:
            if field.type == "name" and field.name in self.lead.values:
                return self.lead.values[field.name]
        return ""

    # --- turn handling ------------------------------------------------------------------

    def _answer_readback(self, name: str, c: Candidates, parts: list[str]) -> None:
        """The caller answers "I have your X as ..., is that right?"."""
        self._pending_confirm = None
        field = self.form.field(name)
        old = self.lead.values.get(name)
        new = self._try(field, self._candidates(field, c, whole_text=False))
        if new is not None and new.value != old:
            return  # a corrected value: _next reads it back again
        if c.yes:
            self.lead.confirm(name)
        elif c.no:
            self.lead.clear(name)
            self._asking = name
            parts.append(self._phrase("sorry_wrong"))

    def _take_volunteered(self, c: Candidates) -> list[str]:
        """Fill empty fields the caller mentioned without being asked (strong cues only)."""
        filled: list[str] = []
        for field in self.form.fields:
            if (
                field.name in (self._asking, self._pending_confirm)
                or field.name in self.lead.values
            ):
                continue
            if field.type not in ("phone", "email", "name"):
                continue
            if self._try(field, self._candidates(field, c, whole_text=False, weak=False)):
                filled.append(field.name)
        return filled

    def _answer_question(self, field: FormField, c: Candidates, parts: list[str]) -> None:
        """The caller answers the question about ``field`` (or does not)."""
        if self._try(field, self._candidates(field, c, whole_text=True)) is not None:
            self._asking = None
            return
        if c.goodbye:
            return  # "bye" is not a wrong answer; on_caller_turn handles it
        if not field.required:
            self._asking = None  # optional fields are asked once; a "no" is an answer
            if not c.no:
                self.lead.reject(field.name, c.text)
            return
        tries = self._attempts[field.name] = self._attempts.get(field.name, 0) + 1
        if tries >= self._max_attempts:
            self.lead.reject(field.name, c.text)
            self._skipped.add(field.name)
            self._asking = None
            parts.append(self._phrase("give_up"))
        else:
            parts.append(self._phrase(_RETRY_KEY[field.type], choices=", ".join(field.choices)))

    def _candidates(
        self, field: FormField, c: Candidates, *, whole_text: bool, weak: bool = True
    ) -> list[str]:
        """Raw strings that may answer ``field``, most specific first."""
        found: list[str]
        if field.type == "phone":
            found = list(c.phones)
        elif field.type == "email":
            caller = self._caller_name()
            found = list(caller_emails(c.text, c.emails, caller))
        elif field.type == "name":
            found = list(c.names) + (list(c.weak_names) if weak else [])
            if whole_text and len(c.text.split()) > _MAX_BARE_NAME_WORDS:
                whole_text = False  # a long sentence is not a bare name
        else:
            found = []
        if whole_text:
            found.append(c.text)
        return found

    def _try(self, field: FormField, raws: list[str]) -> Normalized | None:
        for raw in raws:
            result = self.lead.set(field.name, raw, now=self._clock())
            if isinstance(result, Normalized):
                return result
        return None

    # --- choosing what to say -----------------------------------------------------------

    def _first_missing(self) -> str | None:
        missing = self.lead.missing_required()
        fresh = [m for m in missing if m not in self._skipped]
        pool = fresh or missing
        return pool[0] if pool else None

    def _next(self, parts: list[str], updates: dict[str, str]) -> AgentReply:
        """Read back, ask the next missing field, or close."""
        for field in self.form.fields:
            if self.lead.needs_confirmation(field.name):
                self._pending_confirm, self._asking = field.name, None
                parts.append(self._readback(field))
                return AgentReply(" ".join(parts), self.language, updates)
        missing = self._first_missing()
        if missing is not None:
            field = self.form.field(missing)
            if missing in self._skipped and missing != self._asking:
                # Every other field is done: come back to the one we gave up on.
                self._attempts[missing] = 0
                parts.append(self._phrase("still_need", label=self._form_text(field.label)))
            self._asking = missing
            parts.append(self._ask(field))
            return AgentReply(" ".join(parts), self.language, updates)
        for field in self.form.fields:
            if not field.required and field.name not in self._asked_optional:
                self._asked_optional.add(field.name)
                if field.name not in self.lead.values:
                    self._asking = field.name
                    parts.append(self._ask(field))
                    return AgentReply(" ".join(parts), self.language, updates)
        parts.append(self._form_text(self.form.closing))
        return self._end(
            AgentReply(" ".join(parts), self.language, updates, EndCall("lead_complete"))
        )

    def _end(self, reply: AgentReply) -> AgentReply:
        """Remember the closing reply: a caller who talks over it hears it again."""
        goodbye = reply.end_call is not None and reply.end_call.reason == "caller_goodbye"
        again = self._phrase("bye") if goodbye else self._form_text(self.form.closing)
        self._ended = replace(reply, say=again)
        return reply

    def _before_you_go(self, name: str, updates: dict[str, str]) -> AgentReply:
        field = self.form.field(name)
        if self.lead.needs_confirmation(name):
            self._pending_confirm, self._asking = name, None
            return AgentReply(self._readback(field), self.language, updates)
        self._asking = name
        self._attempts[name] = 0
        say = self._phrase("before_go", label=self._form_text(field.label))
        return AgentReply(say, self.language, updates)

    def instruct(self, text: str) -> None:
        """The loop rule says the agent repeats itself: the free text cannot be followed,
        so the next question is asked another way (see ``_REPHRASED``)."""
        log.info("asking the next question another way (%s)", text[:60])
        self._rephrase = True

    def _ask(self, field: FormField) -> str:
        prompt = self._form_text(field.prompt)
        if not self._rephrase:
            return prompt
        self._rephrase = False
        words = _REPHRASED.get(self.language, _REPHRASED["en"])
        return f"{words['lead']} {words.get(field.type, prompt)}"

    def _phrase(self, key: str, **kwargs: str) -> str:
        return _PHRASES.get(self.language, _PHRASES["en"])[key].format(**kwargs)

    def _form_text(self, texts: dict[str, str]) -> str:
        return texts.get(self.language) or texts[self.form.languages[0]]

    def _readback(self, field: FormField) -> str:
        value = speakable(field, self.lead.values[field.name], self.language, self.region)
        return self._phrase("readback", label=self._form_text(field.label), value=value)


def stt_prompt_for(field_type: str, caller_name: str = "") -> str | None:
    """The English transcriber prompt for an answer of this field type (None: none)."""
    prompt = STT_PROMPTS.get(field_type)
    if prompt is None:
        return None
    return prompt.format(name=f"Name: {caller_name}. " if caller_name else "")


def speakable(field: FormField, value: str, language: str, region: str = "US") -> str:
    """A normalized value as it should be read aloud (digits one by one, "at"/"dot")."""
    words = _PHRASES.get(language, _PHRASES["en"])
    if field.type == "phone":
        number = phonenumbers.parse(value)
        local = phonenumbers.region_code_for_number(number) == region
        fmt = phonenumbers.PhoneNumberFormat
        text = phonenumbers.format_number(number, fmt.NATIONAL if local else fmt.INTERNATIONAL)
        groups = [" ".join(g) for g in re.findall(r"\d+", text)]
        spoken = ", ".join(groups)
        return f"{words['plus']} {spoken}" if text.startswith("+") else spoken
    if field.type == "email":
        return value.replace("@", f" {words['at']} ").replace(".", f" {words['dot']} ")
    if field.type in ("date", "datetime", "time"):
        return _speak_when(field, value, language)
    return value


def _speak_when(field: FormField, value: str, language: str) -> str:
    if field.type == "time":
        return value
    when = datetime.fromisoformat(value)
    has_time = "T" in value
    if language == "he":
        day = f"יום {_HE_DAYS[when.weekday()]}, {when.day} ב{_HE_MONTHS[when.month - 1]}"
        return f"{day} בשעה {when:%H:%M}" if has_time else day
    day = f"{when:%A}, {when:%B} {when.day}"
    if not has_time:
        return day
    hour = when.hour % 12 or 12
    return f"{day} at {hour}:{when:%M} {'PM' if when.hour >= 12 else 'AM'}"
