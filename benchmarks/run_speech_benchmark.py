"""Speech benchmark of the fallback pipeline's local backends, on telephone-band speech.

    python -m benchmarks.run_speech_benchmark [--quick] [--fields-only] [--fixed-voice]
        [--beam-size N] [--no-speech-check] [--no-prompt] [--out FILE]

The corpus is synthesized: each sentence is spoken by two "speakers", the Piper voice
(``joe``, the same model as the agent's TTS) and espeak-ng (``en-us``), levelled, mixed
with a noise bed (a quiet room at 30 dB SNR, street and babble at 10 dB SNR), then sent
through the telephone channel (300-3400 Hz, 8 kHz, mu-law). Measured:

* word error rate of the local STT (faster-whisper tiny.en) per speaker and condition,
  after a light normalization (case, punctuation, digits vs digit words, contractions);
* STT latency per utterance (p50, p95) and real-time factor, one utterance at a time;
* TTS latency to the first sentence's audio, for Piper and espeak-ng, on the agent's
  multi-sentence replies (the built-in form's lines);
* field accuracy: for sentences that give a name, a phone number and an e-mail address,
  the transcript goes through ``conversation.extract`` and ``form.normalize``, and the
  share of fields recovered exactly is reported (the reference text through the same
  extractor gives the ceiling). Field answers are transcribed with the prompt the local
  form agent gives the STT when it asks for that field (the e-mail prompt carries the
  name recovered from the same speaker and condition, as in a call), and again without
  any prompt, so both are measured on the same audio in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import re
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
from rich.progress import Progress

from benchmarks.report import command_line, utc_minute, write_section
from callgate.conversation.agents.local import stt_prompt_for
from callgate.conversation.extract import caller_emails, extract
from callgate.conversation.form import Form, Normalized, load_form, normalize
from callgate.speech.stt import LocalWhisperSTT, WhisperOptions
from callgate.speech.tts import EspeakTTS, PiperTTS, TextToSpeech, split_sentences
from callgate.synth.channel import telephone_channel
from callgate.synth.scenes import NOISE_BEDS, mix_at_snr, set_level_dbfs
from callgate.synth.speech import speak

FloatAudio = npt.NDArray[np.float64]
RATE = 8000
NOW = dt.datetime(2026, 11, 25, 10, 0)

GENERAL_SENTENCES: tuple[str, ...] = (
    "Hello, I am calling about my appointment.",
    "Yes, that works for me.",
    "Can you hear me?",
    "I would like to book a table for Thursday evening.",
    "No, not that one, the other address.",
    "I am not sure, let me check.",
    "Could you repeat that please?",
    "It is about the invoice from last month.",
    "Tomorrow morning is better for me.",
    "We have a problem with the heating in the kitchen.",
    "I called yesterday but nobody answered.",
    "Wait a second, my kids are shouting.",
)


@dataclass(frozen=True)
class Lead:
    """One caller's details, as said and as the form should store them."""

    name: str
    phone_words: str
    phone: str
    email_words: str
    email: str


FIRST_LEADS: tuple[Lead, ...] = (
    Lead("Dana Cohen", "two one two, five five five, zero one nine eight", "+12125550198",
         "dana dot cohen at example dot com", "dana.cohen@example.com"),
    Lead("Michael Brown", "four one five, five five five, two six seven one", "+14155552671",
         "michael dot brown at gmail dot com", "michael.brown@gmail.com"),
    Lead("Sarah Miller", "six four six, five five five, three four one two", "+16465553412",
         "sarah dot miller at yahoo dot com", "sarah.miller@yahoo.com"),
    Lead("David Levy", "three one zero, five five five, seven seven zero one", "+13105557701",
         "david dot levy at outlook dot com", "david.levy@outlook.com"),
    Lead("Emily Davis", "seven one eight, five five five, zero one four three", "+17185550143",
         "emily at davis dot org", "emily@davis.org"),
    Lead("Daniel Katz", "nine one seven, five five five, eight eight two zero", "+19175558820",
         "daniel dot katz at example dot org", "daniel.katz@example.org"),
)  # fmt: skip
"""The first six callers (the gate ASR benchmark speaks these too)."""

MORE_LEADS: tuple[Lead, ...] = (
    Lead("Jennifer Martinez", "three zero five, five five five, four two one eight",
         "+13055554218", "jennifer dot martinez at gmail dot com",
         "jennifer.martinez@gmail.com"),
    Lead("Noa Mizrahi", "plus nine seven two, five two, three four five, six seven eight nine",
         "+972523456789", "noa dot mizrahi at gmail dot com", "noa.mizrahi@gmail.com"),
    Lead("Robert Williams", "eight one eight, five five five, oh nine two six", "+18185550926",
         "robert underscore williams at yahoo dot com", "robert_williams@yahoo.com"),
    Lead("Yosef Peretz", "five six one, five five five, two nine zero four", "+15615552904",
         "yosef dot peretz at walla dot co dot il", "yosef.peretz@walla.co.il"),
    Lead("Jessica Nguyen", "four zero eight, five five five, twenty three, eighteen",
         "+14085552318", "jessica dot nguyen at icloud dot com", "jessica.nguyen@icloud.com"),
    Lead("Tamar Friedman", "three four seven, five five five, eight one two three",
         "+13475558123", "tamar dot friedman at hotmail dot com", "tamar.friedman@hotmail.com"),
    Lead("Christopher Thompson", "six one seven, five five five, double two four nine",
         "+16175552249", "chris dot thompson at outlook dot com", "chris.thompson@outlook.com"),
    Lead("Avi Biton", "two zero one, five five five, zero seven seven four", "+12015550774",
         "avi dot biton at yahoo dot com", "avi.biton@yahoo.com"),
    Lead("Ashley Garcia", "seven zero two, five five five, one eight eight six", "+17025551886",
         "ashley dot garcia at aol dot com", "ashley.garcia@aol.com"),
    Lead("Eitan Shapiro", "plus nine seven two, five four, seven seven one, two three four five",
         "+972547712345", "eitan dot shapiro at proton dot me", "eitan.shapiro@proton.me"),
    Lead("Kevin Robinson", "two zero two, five five five, zero one six five", "+12025550165",
         "kevin at robinson dot net", "kevin@robinson.net"),
    Lead("Shira Goldberg", "five one six, five five five, four four six two", "+15165554462",
         "shira dot goldberg at gmail dot com", "shira.goldberg@gmail.com"),
    Lead("Maria Rodriguez", "nine five four, five five five, three three one zero",
         "+19545553310", "maria dot rodriguez at hotmail dot com", "maria.rodriguez@hotmail.com"),
    Lead("Omer Avraham", "six one nine, triple five, seven two six one", "+16195557261",
         "omer dot avraham at gmail dot com", "omer.avraham@gmail.com"),
    Lead("Yael Dahan", "nine one four, five five five, six oh three one", "+19145556031",
         "yael dot dahan at outlook dot com", "yael.dahan@outlook.com"),
    Lead("James Anderson", "five one two, five five five, nineteen, forty seven",
         "+15125551947", "james dot anderson at company dot com", "james.anderson@company.com"),
    Lead("Moshe Azoulay", "seven seven three, five five five, zero two eight eight",
         "+17735550288", "moshe at azoulay dot net", "moshe@azoulay.net"),
    Lead("Itai Malka", "four zero four, five five five, nine one three six", "+14045559136",
         "itai dot malka at icloud dot com", "itai.malka@icloud.com"),
)  # fmt: skip
"""Eighteen more callers, so one word moves the clean-speech accuracy by 1.4 points, not
5.5: common US and Israeli first names and surnames, phone numbers in several groupings
("oh" for zero, "double", "triple", pairs like "twenty three", Israeli mobiles with "plus
nine seven two") and several mail providers and address shapes."""

LEADS: tuple[Lead, ...] = FIRST_LEADS + MORE_LEADS

CONDITIONS: dict[str, tuple[str, float]] = {
    "quiet": ("quiet_room", 30.0),
    "street 10 dB": ("street", 10.0),
    "babble 10 dB": ("babble", 10.0),
}
"""Condition name -> (noise bed, SNR in dB over the active speech level)."""

SPEAKERS = ("piper", "espeak")
CORPUS_NOTE = (
    f"Corpus: 12 everyday sentences and, for {len(LEADS)} callers (common US and Israeli "
    "first names and surnames), one sentence each giving the name, the phone number in "
    'digit words ("two one two, five five five, ...", also with "oh", "double", "triple", '
    'pairs such as "twenty three" and two Israeli mobiles with "plus nine seven two") and '
    'the e-mail address in words ("dana dot cohen at example dot com", nine mail hosts); '
    "each spoken by Piper (the bundled joe voice) and espeak-ng (en-us, 160 wpm), levelled "
    "to -22 dBFS, mixed with a quiet room at 30 dB SNR or street or babble at 10 dB SNR, "
    "then band-limited to 300-3400 Hz at 8 kHz through mu-law. WER is counted after "
    "lower-casing, dropping punctuation, expanding contractions and writing digits and "
    "digit words alike. Latency is wall time of `LocalWhisperSTT.transcribe` (resampling "
    "included), one utterance at a time; the TTS rows speak the built-in form's lines "
    "sentence by sentence, without the cache."
)
FIELDS_ONLY_NOTE = (
    " This run (`--fields-only`) spoke only the callers' sentences, so the WER and latency "
    "rows are theirs, and it has no TTS rows."
)
FIELDS = ("full_name", "phone", "email")
TARGET_FIELD_ACCURACY = 0.9


@dataclass(frozen=True)
class Utterance:
    """One sentence to speak; ``field``/``expected`` are set for lead-form sentences."""

    text: str
    field: str = ""
    expected: str = ""


def corpus(
    quick: bool, leads: Sequence[Lead] = FIRST_LEADS, *, general: bool = True
) -> list[Utterance]:
    """The sentences: general ones, then name / phone / e-mail sentences per lead.

    ``quick`` keeps half the general sentences and the first three leads; ``general``
    False leaves the general sentences out (field accuracy only).
    """
    sentences = (GENERAL_SENTENCES[:6] if quick else GENERAL_SENTENCES) if general else ()
    leads = leads[:3] if quick else leads
    items = [Utterance(s) for s in sentences]
    for lead in leads:
        items += [
            Utterance(f"My name is {lead.name}.", "full_name", lead.name),
            Utterance(f"My number is {lead.phone_words}.", "phone", lead.phone),
            Utterance(f"My email is {lead.email_words}.", "email", lead.email),
        ]
    return items


# --- word error rate ---------------------------------------------------------------------

_DIGITS = {"zero": "0", "oh": "0", "one": "1", "two": "2", "three": "3", "four": "4",
           "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9"}  # fmt: skip
_CONTRACTIONS = {"i'm": "i am", "it's": "it is", "that's": "that is", "don't": "do not",
                 "can't": "cannot", "i'd": "i would", "i'll": "i will", "we're": "we are",
                 "you're": "you are", "what's": "what is", "let's": "let us", "ok": "okay",
                 "didn't": "did not", "isn't": "is not", "there's": "there is"}  # fmt: skip


def normalize_words(text: str) -> list[str]:
    """Words for WER: lower case, no punctuation, "@"/"." in addresses spoken, contractions
    expanded, digit words as digits and digit strings split into digits."""
    low = text.lower().replace("@", " at ")
    low = re.sub(r"(?<=\w)\.(?=\w)", " dot ", low)
    low = re.sub(r"[^\w' ]+", " ", low)
    words: list[str] = []
    for raw in low.split():
        word = raw.strip("'")
        for part in _CONTRACTIONS.get(word, word).split():
            if part.isdigit():
                words.extend(part)
            elif part:
                words.append(_DIGITS.get(part, part))
    return words


def edit_distance(ref: Sequence[str], hyp: Sequence[str]) -> int:
    """Levenshtein distance between two word sequences."""
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1]


def word_error_rate(reference: str, hypothesis: str) -> float:
    """(substitutions + deletions + insertions) / reference words, after normalization."""
    ref, hyp = normalize_words(reference), normalize_words(hypothesis)
    if not ref:
        return float(bool(hyp))
    return edit_distance(ref, hyp) / len(ref)


# --- field accuracy ----------------------------------------------------------------------


def recover_field(form: Form, name: str, transcript: str, caller: str = "") -> str | None:
    """What the agent would store for ``name`` from this transcript (None: nothing valid).

    The extracted candidates of the field's kind (e-mail addresses read with the caller's
    name, when known, as the form agent does: ``caller_emails``), else the whole transcript; the
    first that ``form.normalize`` accepts.
    """
    found = extract(transcript, now=NOW)
    candidates = {
        "full_name": found.names or found.weak_names,
        "phone": found.phones,
        "email": caller_emails(transcript, found.emails, caller),
    }[name]
    for raw in (*candidates, transcript):
        result = normalize(form.field(name), raw, region="US", now=NOW)
        if isinstance(result, Normalized):
            return result.value
    return None


# --- the corpus audio --------------------------------------------------------------------


class NoiseBank:
    """One long bed per noise family, cut at random offsets (babble is slow to make)."""

    def __init__(self, rng: np.random.Generator, seconds: float = 60.0) -> None:
        self.rng = rng
        self.seconds = seconds
        self.beds: dict[str, FloatAudio] = {}

    def cut(self, name: str, n: int) -> FloatAudio:
        bed = self.beds.get(name)
        if bed is None:
            bed = self.beds[name] = NOISE_BEDS[name](self.seconds, RATE, self.rng)
        start = int(self.rng.integers(0, max(1, bed.size - n)))
        return np.asarray(bed[start : start + n], dtype=np.float64)


def speak_piper(piper: PiperTTS, text: str) -> FloatAudio:
    """Piper's voice at 8 kHz, float."""
    from callgate.audio.resample import resample  # noqa: PLC0415

    pcm = piper.render(text)
    return resample(pcm.astype(np.float64) / 32768.0, piper.sample_rate_hz, RATE)


def telephone_clip(speech: FloatAudio, bank: NoiseBank, condition: str) -> npt.NDArray[np.int16]:
    """Speech padded with 0.3 s each side, at -22 dBFS, in noise, through the phone line."""
    pad = np.zeros(int(0.3 * RATE))
    clean = np.concatenate([pad, set_level_dbfs(speech, -22.0), pad])
    bed, snr = CONDITIONS[condition]
    noisy = mix_at_snr(clean, bank.cut(bed, clean.size), snr, RATE)
    return telephone_channel(noisy, RATE)


# --- measuring ---------------------------------------------------------------------------


@dataclass
class SttScore:
    """Errors and fields per (speaker, condition); latencies over everything."""

    edits: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    words: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    fields_ok: dict[tuple[str, str, str], int] = field(default_factory=lambda: defaultdict(int))
    fields_n: dict[tuple[str, str, str], int] = field(default_factory=lambda: defaultdict(int))
    latency_s: list[float] = field(default_factory=list)
    audio_s: list[float] = field(default_factory=list)
    errors: list[tuple[str, str, str, str]] = field(default_factory=list)
    plain_ok: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    """Fields recovered from the same audio transcribed without a prompt."""
    misses: list[tuple[str, str, str, str, str]] = field(default_factory=list)
    """(speaker, condition, expected, transcript, recovered) of each wrong field."""
    reference_ok: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    reference_n: dict[str, int] = field(default_factory=lambda: defaultdict(int))


async def measure_stt(
    stt: LocalWhisperSTT,
    piper: PiperTTS,
    items: list[Utterance],
    progress: Progress,
    *,
    seed: int = 7,
    prompts: bool = True,
) -> SttScore:
    """Transcribe every sentence by every speaker in every condition, one at a time.

    With ``prompts``, a field sentence is transcribed with the prompt the form agent gives
    the STT when it asks for that field (``stt_prompt_for``), the e-mail one carrying the
    name recovered from the same speaker and condition, as in a call.
    """
    form = load_form()
    score = SttScore()
    caller: dict[tuple[str, str], str] = {}
    caller_plain: dict[tuple[str, str], str] = {}
    bank = NoiseBank(np.random.default_rng(seed))
    speakers: dict[str, Callable[[str], FloatAudio]] = {
        "piper": lambda text: speak_piper(piper, text),
        "espeak": lambda text: speak(text, voice="en-us", rate_wpm=160, sample_rate_hz=RATE),
    }
    task = progress.add_task("speech to text", total=len(items) * len(SPEAKERS) * len(CONDITIONS))
    for item in items:
        if item.field:
            got = recover_field(form, item.field, item.text)
            score.reference_n[item.field] += 1
            score.reference_ok[item.field] += got == item.expected
        for speaker in SPEAKERS:
            speech = speakers[speaker](item.text)
            for condition in CONDITIONS:
                pcm = telephone_clip(speech, bank, condition)
                key = (speaker, condition)
                prompt = None
                if prompts and item.field:
                    prompt = stt_prompt_for(form.field(item.field).type, caller.get(key, ""))
                started = time.perf_counter()
                text = await stt.transcribe(pcm, prompt=prompt)
                score.latency_s.append(time.perf_counter() - started)
                score.audio_s.append(pcm.size / RATE)
                ref = normalize_words(item.text)
                edits = edit_distance(ref, normalize_words(text))
                score.edits[key] += edits
                score.words[key] += len(ref)
                if edits:
                    score.errors.append((speaker, condition, item.text, text))
                if item.field:
                    got = recover_field(form, item.field, text, caller.get(key, ""))
                    if item.field == "full_name":
                        caller[key] = got or ""
                    fkey = (speaker, condition, item.field)
                    score.fields_n[fkey] += 1
                    score.fields_ok[fkey] += got == item.expected
                    if got != item.expected:
                        score.misses.append((speaker, condition, item.expected, text, got or "-"))
                    plain = await stt.transcribe(pcm) if prompt else text
                    got = recover_field(form, item.field, plain, caller_plain.get(key, ""))
                    if item.field == "full_name":
                        caller_plain[key] = got or ""
                    score.plain_ok[key] += got == item.expected
                progress.advance(task)
    return score


@dataclass
class TtsScore:
    """Per backend: time to the first sentence's audio and to the whole reply."""

    name: str
    first_s: list[float] = field(default_factory=list)
    first_audio_s: list[float] = field(default_factory=list)
    total_s: list[float] = field(default_factory=list)
    total_audio_s: list[float] = field(default_factory=list)


def replies(form: Form) -> list[str]:
    """The agent's lines: greeting + first prompt, each prompt, the closing."""
    lines = [f"{form.greeting['en']} {form.fields[0].prompt['en']}"]
    lines += [f"Thank you. {f.prompt['en']}" for f in form.fields[1:]]
    lines += [
        "I have your phone number as two one two, five five five, zero one nine eight. "
        "Is that correct?",
        "Sorry, I did not catch that. Could you say it again, slowly?",
        form.closing["en"],
    ]
    return lines


async def measure_tts(backend: TextToSpeech, lines: list[str], progress: Progress) -> TtsScore:
    """Speak each reply sentence by sentence, timing the first sentence and the whole."""
    score = TtsScore(backend.name)
    task = progress.add_task(f"text to speech ({backend.name})", total=len(lines))
    for line in lines:
        started = time.perf_counter()
        total_audio = 0.0
        for k, sentence in enumerate(split_sentences(line)):
            audio = await backend.synthesize(sentence, "en")
            seconds = len(audio) / RATE
            total_audio += seconds
            if k == 0:
                score.first_s.append(time.perf_counter() - started)
                score.first_audio_s.append(seconds)
        score.total_s.append(time.perf_counter() - started)
        score.total_audio_s.append(total_audio)
        progress.advance(task)
    return score


# --- report ------------------------------------------------------------------------------


def _ms(values: list[float], q: float) -> str:
    return f"{np.percentile(values, q) * 1000:.0f}"


def _share(ok: int, n: int) -> str:
    return f"{ok}/{n} ({ok / n:.0%})" if n else "-"


def tables(stt: SttScore, tts: list[TtsScore], load_s: float, warm_s: float) -> str:
    """The results as markdown tables."""
    out = ["**Word error rate** (local STT, faster-whisper tiny.en int8)\n"]
    out.append("| speaker | " + " | ".join(CONDITIONS) + " |")
    out.append("|---|" + "---|" * len(CONDITIONS))
    for speaker in SPEAKERS:
        cells = []
        for condition in CONDITIONS:
            words = stt.words[(speaker, condition)]
            cells.append(f"{stt.edits[(speaker, condition)] / words:.1%}" if words else "-")
        out.append(f"| {speaker} | " + " | ".join(cells) + " |")
    lat, audio = stt.latency_s, stt.audio_s
    rtf = np.array(lat) / np.array(audio)
    out += [
        "",
        "**STT latency**, one utterance at a time "
        f"({len(lat)} utterances of {np.min(audio):.1f}-{np.max(audio):.1f} s)\n",
        "| model load | warm-up | p50 ms | p95 ms | max ms | real-time factor p50 | p95 |",
        "|---|---|---|---|---|---|---|",
        f"| {load_s * 1000:.0f} ms | {warm_s * 1000:.0f} ms | {_ms(lat, 50)} | {_ms(lat, 95)} | "
        f"{max(lat) * 1000:.0f} | {np.median(rtf):.3f} | {np.percentile(rtf, 95):.3f} |",
    ]
    if tts:
        out += [
            "",
            "**TTS latency to the first sentence's audio** (the agent's replies, split with "
            "`split_sentences`, mu-law 8 kHz out)\n",
            "| backend | replies | first sentence p50 ms | p95 ms | first sentence audio, "
            "median s | whole reply p50 ms | real-time factor (whole) |",
            "|---|---|---|---|---|---|---|",
        ]
    for s in tts:
        factor = float(np.sum(s.total_s) / np.sum(s.total_audio_s))
        out.append(
            f"| {s.name} | {len(s.first_s)} | {_ms(s.first_s, 50)} | {_ms(s.first_s, 95)} | "
            f"{np.median(s.first_audio_s):.2f} | {_ms(s.total_s, 50)} | {factor:.3f} |"
        )
    out += [
        "",
        "**Field accuracy**: transcript -> `extract` -> `normalize`, exact match with the "
        "expected value\n",
        "| speaker | condition | " + " | ".join(FIELDS) + " | all fields |",
        "|---|---|" + "---|" * (len(FIELDS) + 1),
    ]
    ref_ok = sum(stt.reference_ok.values())
    ref_n = sum(stt.reference_n.values())
    out.append(
        "| reference text | (no STT) | "
        + " | ".join(_share(stt.reference_ok[f], stt.reference_n[f]) for f in FIELDS)
        + f" | {_share(ref_ok, ref_n)} |"
    )
    for speaker in SPEAKERS:
        for condition in CONDITIONS:
            ok = [stt.fields_ok[(speaker, condition, f)] for f in FIELDS]
            n = [stt.fields_n[(speaker, condition, f)] for f in FIELDS]
            cells = [_share(o, k) for o, k in zip(ok, n, strict=True)]
            out.append(
                f"| {speaker} | {condition} | "
                + " | ".join(cells)
                + f" | {_share(sum(ok), sum(n))} |"
            )
    out += [
        "",
        "All fields, the same audio transcribed with and without the form agent's STT prompts:\n",
        "| speaker | condition | with prompts | without |",
        "|---|---|---|---|",
    ]
    for speaker in SPEAKERS:
        for condition in CONDITIONS:
            total = sum(stt.fields_n[(speaker, condition, f)] for f in FIELDS)
            right = sum(stt.fields_ok[(speaker, condition, f)] for f in FIELDS)
            plain = stt.plain_ok[(speaker, condition)]
            out.append(
                f"| {speaker} | {condition} | {_share(right, total)} | {_share(plain, total)} |"
            )
    clean = [m for m in stt.misses if m[:2] == ("piper", "quiet")]
    if clean:
        out += ["", "Wrong fields on clean speech (Piper, quiet):\n"]
        out += ["| expected | transcribed | recovered |", "|---|---|---|"]
        out += [f"| {m[2]} | {m[3]} | {m[4]} |" for m in clean]
    return "\n".join(out)


def clean_accuracy(stt: SttScore) -> tuple[int, int]:
    """(right, all) fields on clean telephone speech: Piper, quiet room (issue 6's target)."""
    keys = [("piper", "quiet", f) for f in FIELDS]
    return sum(stt.fields_ok[k] for k in keys), sum(stt.fields_n[k] for k in keys)


def examples(stt: SttScore, limit: int = 12) -> str:
    """A few transcription errors, for the reader."""
    rows = ["| speaker | condition | said | transcribed |", "|---|---|---|---|"]
    for speaker, condition, said, heard in stt.errors[:limit]:
        rows.append(f"| {speaker} | {condition} | {said} | {heard or '(nothing)'} |")
    return "\n".join(rows)


async def run(args: argparse.Namespace) -> str:
    """Everything; returns the markdown body."""
    options = WhisperOptions(beam_size=args.beam_size, require_speech=not args.no_speech_check)
    stt = LocalWhisperSTT(workers=1, cpu_threads=1, options=options)
    piper = PiperTTS(noise_scale=0.0, noise_w_scale=0.0) if args.fixed_voice else PiperTTS()
    started = time.perf_counter()
    stt.load()  # the load alone, for the table
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    stt.warm_up()
    warm_s = time.perf_counter() - started
    piper.warm_up()
    espeak = EspeakTTS()
    await espeak.synthesize("Hello.")  # the first process start pays for the page cache
    items = corpus(args.quick, LEADS, general=not args.fields_only)
    with Progress() as progress:
        score = await measure_stt(stt, piper, items, progress, prompts=not args.no_prompt)
        lines = replies(load_form())
        tts = (
            []
            if args.fields_only
            else [await measure_tts(b, lines, progress) for b in (piper, espeak)]
        )
    ok, n = clean_accuracy(score)
    verdict = "met" if n and ok / n >= TARGET_FIELD_ACCURACY else "not met"
    target = (
        f"**Field accuracy on clean telephone speech** (Piper, quiet room): {_share(ok, n)}; "
        f"target at least {TARGET_FIELD_ACCURACY:.0%}: **{verdict}**.\n\n"
    )
    return (
        target
        + tables(score, tts, load_s, warm_s)
        + "\n\nSome transcription errors:\n\n"
        + examples(score)
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller corpus (~1 min)")
    parser.add_argument(
        "--fields-only",
        action="store_true",
        help="only the callers' name, phone and e-mail sentences: field accuracy (and their "
        "WER and STT latency), no everyday sentences, no TTS (~5 min)",
    )
    parser.add_argument("--beam-size", type=int, default=WhisperOptions().beam_size)
    parser.add_argument(
        "--fixed-voice",
        action="store_true",
        help="Piper without sampling noise: the same audio in every run, for comparing two "
        "versions of the code (by default each run's Piper audio differs a little, which "
        "moves clean field accuracy by a few fields between runs)",
    )
    parser.add_argument(
        "--no-speech-check",
        action="store_true",
        help="transcribe without the Silero VAD's is-there-speech check",
    )
    parser.add_argument(
        "--no-prompt",
        action="store_true",
        help="transcribe field answers without the form agent's STT prompts",
    )
    parser.add_argument("--out", type=Path, help="replace the speech section of this file")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    tables_md = asyncio.run(run(args))
    command = command_line("benchmarks.run_speech_benchmark", argv)
    date = utc_minute()
    body = (
        f"Generated {date} by `{command}` on the shared 2-core machine in "
        f"{time.perf_counter() - started:.0f} s (one CPU thread for whisper, beam size "
        f"{args.beam_size}, speech check {'off' if args.no_speech_check else 'on'}, field "
        f"answers {'without' if args.no_prompt else 'with'} the form agent's STT prompts"
        f"{', Piper without sampling noise' if args.fixed_voice else ''})."
        "\n\n" + CORPUS_NOTE + (FIELDS_ONLY_NOTE if args.fields_only else "") + "\n\n" + tables_md
    )
    print(body)
    if args.out:
        write_section(args.out, "speech-benchmark", body, "Speech backends (fallback pipeline)")


if __name__ == "__main__":
    main()
