"""The one settings object: every tunable, read from the environment and ``.env``.

Field names are the mission's variable names (``SNR_START_NORMAL`` and so on) in lower case;
pydantic-settings matches them case-insensitively. Settings are read once at start-up and
passed down; nothing deeper reads the environment. Invalid values fail at start-up with a
:class:`ConfigError` that names the variable and the rule it broke.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, Self

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from callgate.audio import FrameGate, GateOptions, LegacyEnergyVad, LegacyVadOptions, SpeechGate
from callgate.audio.agc import AgcOptions
from callgate.audio.bandpass import BandpassOptions
from callgate.audio.gate_options import Thresholds
from callgate.audio.music import MusicOptions
from callgate.audio.noise_floor import NoiseFloorOptions
from callgate.audio.silero import missing_message as silero_missing
from callgate.audio.silero import silero_available
from callgate.audio.state_machine import StateMachineOptions
from callgate.audio.talker import TalkerOptions

VadKind = Literal["gate", "legacy"]


class ConfigError(ValueError):
    """A setting is missing, malformed or inconsistent. The message names the variable."""


_FRAME_MULTIPLES = (
    "audio_preroll_ms",
    "audio_word_end_ms",
    "audio_continuation_ms",
    "audio_onset_lookback_ms",
    "noise_calibration_ms",
)
"""Durations, in ms, that the gate counts in whole frames."""


class Settings(BaseSettings):
    """callgate's configuration. Each field's description is its documentation."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        case_sensitive=False,
        extra="ignore",
        validate_default=True,
    )

    use_realtime_api: bool | None = Field(
        None,
        description="Run calls on the OpenAI Realtime API (true) or the fallback pipeline "
        "(false). Unset: true when OPENAI_API_KEY is set, else the embedded default "
        "(fallback pipeline on local speech models and the local form agent).",
    )
    audio_frame_size_ms: int = Field(
        20, ge=10, le=60, description="Analysis frame of the gate, in ms (10-60, a multiple of 10)."
    )
    noise_calibration_ms: int = Field(
        600, ge=0, le=10_000, description="Initial noise-floor calibration at call start, in ms."
    )
    audio_preroll_ms: int = Field(
        200, ge=0, le=2_000, description="Audio sent from before the speech onset, in ms."
    )
    audio_hangover_frames: int = Field(
        4, ge=0, le=100, description="Frames still sent after SNR falls below the stop threshold."
    )
    audio_onset_lookback_ms: int = Field(
        480,
        ge=0,
        le=2_000,
        description="Longest reach before the onset when the signal shows the speech began "
        "earlier than AUDIO_PREROLL_MS covers, in ms; at most AUDIO_PREROLL_MS turns it off.",
    )
    audio_word_end_ms: int = Field(
        0,
        ge=0,
        le=1_000,
        description="After the caller's last voiced syllable, how long quiet sound far below "
        "their level still holds speech open, in ms (a multiple of the frame): a word's soft "
        "end ('-ing') is not cut as another talker. 0: off (such sound ends speech at once).",
    )
    audio_continuation_ms: int = Field(
        120,
        ge=0,
        le=1_000,
        description="A candidate that opens within this long after the caller's speech ended "
        "may lie up to 18 dB below their level instead of 14 (the talker rule), in ms (a "
        "multiple of the frame): a sentence's soft last word is not taken for another "
        "talker. 0: off.",
    )
    audio_onset_snr_db: float = Field(
        4.0,
        ge=0,
        le=60,
        description="SNR (dB) a frame before the onset needs to count as the soft start of "
        "the speech, for the onset lookback.",
    )
    snr_start_normal: float = Field(8.0, ge=0, le=60, description="SNR (dB) that opens the gate.")
    snr_stop_normal: float = Field(
        5.0, ge=0, le=60, description="SNR (dB) below which speech ends."
    )
    snr_start_music: float = Field(
        12.0, ge=0, le=60, description="SNR (dB) that opens the gate while music is detected."
    )
    snr_stop_music: float = Field(
        8.0, ge=0, le=60, description="SNR (dB) below which speech ends while music is detected."
    )
    min_speech_rms: float = Field(
        300.0,
        gt=0,
        le=32768,
        description="Legacy energy VAD threshold: frame RMS on the int16 scale (300 = -40.8 dBFS).",
    )
    gate_confirm_frames: int = Field(
        3, ge=1, le=25, description="Frames MAYBE_SPEECH must hold before it becomes SPEECH."
    )
    bandpass_low_hz: float = Field(
        250.0, ge=50, le=1000, description="Lower edge of the speech-band filter, in Hz."
    )
    bandpass_high_hz: float = Field(
        3400.0, ge=1000, le=3900, description="Upper edge of the speech-band filter, in Hz."
    )
    agc_target_dbfs: float = Field(
        -20.0, ge=-40, le=-3, description="Level the AGC brings sent speech towards, in dBFS."
    )
    agc_max_gain_db: float = Field(
        18.0, ge=0, le=40, description="Largest boost the AGC applies, in dB."
    )
    agc_max_cut_db: float = Field(
        6.0, ge=0, le=40, description="Largest attenuation the AGC applies to loud talkers, in dB."
    )
    agc_max_step_db: float = Field(
        1.0, gt=0, le=12, description="Largest gain change from one frame to the next, in dB."
    )
    music_on_ms: int = Field(
        1500, ge=100, le=30_000, description="Sustained music needed to switch to MUSIC thresholds."
    )
    music_off_ms: int = Field(
        3000, ge=100, le=60_000, description="Music-free time needed to switch back to NORMAL."
    )
    gate_confirmer: Literal["none", "silero"] = Field(
        "none",
        description="Second stage on MAYBE_SPEECH candidates: 'silero' runs Silero VAD (ONNX).",
    )
    gate_confirmer_threshold: float = Field(
        0.5, gt=0, lt=1, description="Silero speech probability a candidate needs to open."
    )
    gate_music_listener: bool = Field(
        False,
        description="While loud music plays (its floor within 10 dB of the caller's level), "
        "Silero VAD (ONNX) listens to every frame and may open and confirm speech: callers "
        "at 0-5 dB under loud music. Needs the Silero model, like GATE_CONFIRMER=silero.",
    )
    gate_noise_listener: bool = Field(
        False,
        description="Like GATE_MUSIC_LISTENER, under any loud background (a fan, an open "
        "window, a street within 10 dB of the caller's level), music included: callers at "
        "0-5 dB under noise. Implies GATE_MUSIC_LISTENER. Needs the Silero model.",
    )
    gate_listener_threshold: float = Field(
        0.7,
        gt=0,
        lt=1,
        description="Silero probability at which the music or noise listener counts a frame "
        "as speech starting.",
    )
    gate_listener_below_db: float = Field(
        10.0,
        gt=0,
        le=40,
        description="The background counts as loud, and the listener runs, while its noise "
        "floor is less than this many dB below the caller's level (or the caller is not "
        "known yet).",
    )
    gate_music_residual: bool = Field(
        True,
        description="While music plays, the SNR of the sound between the music's held notes "
        "may open and confirm candidates too (callers talking over loud music).",
    )

    # --- the server and the call bridge ---------------------------------------------
    host: str = Field("127.0.0.1", description="Address callgate serve listens on.")
    port: int = Field(8080, ge=1, le=65535, description="Port callgate serve listens on.")
    public_url: str = Field(
        "http://127.0.0.1:8080",
        description="URL at which Twilio reaches this server; the media stream URL is built "
        "from it (https -> wss).",
    )
    twilio_account_sid: str = Field("", description="Twilio account SID (for hang-up).")
    twilio_auth_token: SecretStr = Field(
        SecretStr(""), description="Twilio auth token: signs webhooks; used for hang-up."
    )
    twilio_validate_signatures: bool = Field(
        True,
        description="Check X-Twilio-Signature on the webhook and the media WebSocket. Turn "
        "off only for local development.",
    )
    openai_api_key: SecretStr = Field(SecretStr(""), description="OpenAI API key.")
    openai_base_url: str = Field("", description="OpenAI REST base URL (empty: the SDK default).")
    openai_websocket_base_url: str = Field(
        "", description="Realtime WebSocket base URL (empty: derived by the SDK)."
    )
    openai_realtime_model: str = Field("gpt-realtime", description="Realtime model name.")
    openai_voice: str = Field("marin", description="Voice of the agent.")
    agent_instructions: str = Field(
        "You are a friendly phone assistant. Keep answers short.",
        description="Instructions for the Realtime model.",
    )
    transcription_model: str = Field(
        "gpt-4o-mini-transcribe", description="Model that transcribes the caller's audio."
    )
    transcription_language: str = Field(
        "", description="ISO-639-1 language of the caller (empty: detect)."
    )
    turn_detection: Literal["client", "server_vad", "semantic_vad"] = Field(
        "client",
        description="Who ends the caller's turn: 'client' (callgate commits after "
        "END_OF_TURN_SILENCE_MS) or the model's server_vad / semantic_vad.",
    )
    end_of_turn_silence_ms: int = Field(
        600, ge=100, le=5000, description="Gate silence that ends the caller's turn (client)."
    )
    turn_silence_padding_ms: int = Field(
        500,
        ge=0,
        le=3000,
        description="Digital silence appended after each utterance in server turn modes.",
    )
    end_of_turn_model: Literal["none", "smart_turn"] = Field(
        "none",
        description="End-of-turn model in client mode: 'smart_turn' asks Smart Turn v3.2 "
        "(the ONNX file in the pipecat-ai wheel) after END_OF_TURN_MIN_SILENCE_MS and ends "
        "the turn early when it hears a finished turn; 'none': no model.",
    )
    end_of_turn_model_threshold: float = Field(
        0.5, ge=0, le=1, description="Probability of 'turn complete' that ends the turn early."
    )
    end_of_turn_clean_pause_snr_db: float | None = Field(
        None,
        ge=-20,
        le=40,
        description="Client mode: a turn may end after END_OF_TURN_MIN_SILENCE_MS when no "
        "frame of the pause reached this SNR (dB). Unset: no such early end.",
    )
    end_of_turn_min_silence_ms: int = Field(
        240,
        ge=20,
        le=5000,
        description="Gate silence after which a turn may end early (client mode).",
    )
    echo_guard_db: float = Field(
        6.0,
        ge=0,
        le=40,
        description="Extra SNR the start threshold needs while the agent's audio plays.",
    )
    apology_text: str = Field(
        "Sorry, we are having technical difficulties. Please call again later.",
        description="What Twilio says before hanging up when the model cannot be reached.",
    )
    realtime_max_reconnects: int = Field(
        3, ge=0, le=20, description="Reconnect attempts after the model connection drops."
    )
    max_media_message_bytes: int = Field(
        65_536,
        ge=1024,
        description="Largest Twilio WebSocket message accepted, in bytes.",
    )

    # --- the conversation, storage and CRM ------------------------------------------
    transcript_merge_gap_ms: int = Field(
        800, ge=0, le=10_000, description="Caller fragments closer than this merge into one turn."
    )
    loop_similarity: float = Field(
        0.85, gt=0, le=1, description="Normalized similarity at which two agent replies repeat."
    )
    loop_repeats: int = Field(
        3, ge=2, le=20, description="Near-identical agent replies in a row that make a loop."
    )
    echo_similarity: float = Field(
        0.8,
        gt=0,
        le=1,
        description="Similarity of a caller turn to the agent's last words "
        "at which it is the agent's echo and is dropped.",
    )
    loop_action: Literal["rephrase", "transfer", "end"] = Field(
        "rephrase",
        description="What a detected loop does: tell the agent to rephrase, "
        "transfer to TRANSFER_NUMBER, or end the call.",
    )
    transfer_number: str = Field("", description="E.164 number that loops and escalations dial.")
    form_path: str = Field("", description="Lead form file (TOML); empty = the built-in form.")
    default_region: str = Field(
        "US", min_length=2, max_length=2, description="Region for phone numbers without a + prefix."
    )
    database_url: str = Field(
        "sqlite+aiosqlite:///./callgate.db",
        description="SQLAlchemy async URL of the call store (SQLite file or PostgreSQL).",
    )
    store_process: bool = Field(
        False,
        description="Write live calls from a process of their own (true) or from the call "
        "server's event loop, one write at a time (false). The process keeps ORM work off "
        "the audio interpreter, which pays on a machine with a core to spare; on a saturated "
        "2-core machine the extra process competes for the cores (docs/benchmarks.md).",
    )
    crm_webhook_url: str = Field("", description="Where finished calls are POSTed (empty: off).")
    crm_hmac_secret: SecretStr = Field(
        SecretStr(""), description="Key of the HMAC-SHA256 signature header on CRM deliveries."
    )
    crm_max_attempts: int = Field(
        25, ge=1, le=1000, description="Delivery attempts before an outbox row is parked."
    )
    api_token: SecretStr = Field(
        SecretStr(""), description="Bearer token for GET /calls (empty: the API is off)."
    )

    agent_backend: Literal["auto", "realtime", "agents_sdk", "local"] = Field(
        "auto",
        description="Who runs the conversation: 'realtime' (the speech model with function "
        "tools), 'agents_sdk' (an OpenAI Agents SDK agent, fallback path), 'local' (the "
        "rule-based form agent, no cloud). auto: realtime on the Realtime path, else "
        "agents_sdk with OPENAI_API_KEY, else local.",
    )
    agent_greets_first: bool = Field(
        True,
        description="The agent opens the call with the form's greeting (else it waits for "
        "the caller to speak first).",
    )
    agent_model: str = Field("gpt-4.1-mini", description="Chat model of the Agents SDK backend.")
    stt_backend: Literal["auto", "openai", "local"] = Field(
        "auto",
        description="Speech-to-text of the fallback path: 'openai' (TRANSCRIPTION_MODEL) or "
        "'local' (faster-whisper tiny.en, English only). auto: openai with a key, else local.",
    )
    stt_workers: int = Field(
        2, ge=1, le=64, description="Transcriptions that run at once (local STT threads)."
    )
    stt_early_ms: int | None = Field(
        None,
        ge=0,
        le=2000,
        description="Fallback path: start transcribing once the gate has sent nothing for "
        "this long, before the turn is committed, and use the result if the caller did not "
        "go on. 0: only after the commit. Unset: 150 with the local STT (it only uses idle "
        "cores), 0 with 'openai' (each stale early transcription is a paid request).",
    )
    tts_backend: Literal["auto", "openai", "piper", "espeak"] = Field(
        "auto",
        description="Text-to-speech of the fallback path: 'openai' (TTS_MODEL, TTS_VOICE), "
        "'piper' (bundled en_US voice), 'espeak' (espeak-ng, light, many languages). auto: "
        "openai with a key, else piper.",
    )
    tts_model: str = Field("gpt-4o-mini-tts", description="OpenAI speech model (TTS).")
    tts_voice: str = Field("coral", description="OpenAI TTS voice.")
    piper_voice_path: str = Field(
        "", description="Piper .onnx voice (its .onnx.json beside it); empty: the bundled voice."
    )
    fallback_vad: VadKind = Field(
        "gate",
        description="Utterance detection of the fallback path: 'gate' or 'legacy' (the "
        "MIN_SPEECH_RMS energy VAD). Never used on the Realtime path.",
    )
    silence_timeout_ms: int = Field(
        10000,
        ge=0,
        le=600000,
        description="Caller silence (agent not speaking) before one 'are you still there' "
        "prompt; the same again ends the call. 0: off.",
    )
    max_call_duration_s: int = Field(
        900, ge=0, le=86400, description="Calls end after this long (0: no limit)."
    )
    hangup_grace_ms: int = Field(
        3000,
        ge=0,
        le=60000,
        description="After the goodbye, hang up once its marks have made no progress for this "
        "long (a lost mark must not keep the line open); 0 waits for the marks with no limit "
        "but MAX_CALL_DURATION_S.",
    )

    realtime_audio_input_usd_per_mtok: float = Field(
        32.0,
        ge=0,
        description="Price of Realtime audio input per million tokens, for the savings estimate.",
    )
    realtime_audio_tokens_per_s: float = Field(
        10.0, gt=0, description="Realtime audio input tokens per second of audio (1 per 100 ms)."
    )

    @model_validator(mode="after")
    def _check_consistency(self) -> Self:
        frame = self.audio_frame_size_ms
        rules: list[tuple[bool, str]] = [
            (frame % 10 == 0, f"AUDIO_FRAME_SIZE_MS must be a multiple of 10, got {frame}"),
            *(
                (
                    getattr(self, name) % frame == 0,
                    f"{name.upper()} ({getattr(self, name)}) must be a multiple of "
                    f"AUDIO_FRAME_SIZE_MS ({frame})",
                )
                for name in _FRAME_MULTIPLES
            ),
            (
                self.snr_start_normal >= self.snr_stop_normal,
                f"SNR_START_NORMAL ({self.snr_start_normal}) must be >= SNR_STOP_NORMAL "
                f"({self.snr_stop_normal})",
            ),
            (
                self.snr_start_music >= self.snr_stop_music,
                f"SNR_START_MUSIC ({self.snr_start_music}) must be >= SNR_STOP_MUSIC "
                f"({self.snr_stop_music})",
            ),
            (
                self.snr_start_music >= self.snr_start_normal,
                f"SNR_START_MUSIC ({self.snr_start_music}) must be >= SNR_START_NORMAL "
                f"({self.snr_start_normal}): music thresholds are the stricter pair",
            ),
            (
                self.bandpass_low_hz < self.bandpass_high_hz,
                f"BANDPASS_LOW_HZ ({self.bandpass_low_hz}) must be below BANDPASS_HIGH_HZ "
                f"({self.bandpass_high_hz})",
            ),
        ]
        if self.end_of_turn_model != "none" or self.end_of_turn_clean_pause_snr_db is not None:
            rules += [
                (
                    self.end_of_turn_min_silence_ms <= self.end_of_turn_silence_ms,
                    f"END_OF_TURN_MIN_SILENCE_MS ({self.end_of_turn_min_silence_ms}) must be <= "
                    f"END_OF_TURN_SILENCE_MS ({self.end_of_turn_silence_ms})",
                ),
                (
                    self.end_of_turn_min_silence_ms % frame == 0,
                    f"END_OF_TURN_MIN_SILENCE_MS ({self.end_of_turn_min_silence_ms}) must be a "
                    f"multiple of AUDIO_FRAME_SIZE_MS ({frame})",
                ),
            ]
        if self.end_of_turn_model != "none":
            rules += [
                (_turn_model_missing() == "", f"END_OF_TURN_MODEL: {_turn_model_missing()}"),
            ]
        key = bool(self.openai_api_key.get_secret_value())
        realtime = self.realtime_path
        rules += [
            (
                not (self.use_realtime_api and not key),
                "USE_REALTIME_API=true needs OPENAI_API_KEY (unset USE_REALTIME_API to run "
                "the embedded default without a key)",
            ),
            (
                not (realtime and self.agent_backend in ("agents_sdk", "local")),
                f"AGENT_BACKEND={self.agent_backend} runs only on the fallback path "
                "(USE_REALTIME_API=false); the Realtime path uses 'realtime'",
            ),
            (
                not (not realtime and self.agent_backend == "realtime"),
                "AGENT_BACKEND=realtime needs the Realtime path (USE_REALTIME_API and "
                "OPENAI_API_KEY)",
            ),
            (
                key
                or (
                    "openai" not in (self.stt_backend, self.tts_backend)
                    and self.agent_backend != "agents_sdk"
                ),
                "STT_BACKEND/TTS_BACKEND=openai and AGENT_BACKEND=agents_sdk need OPENAI_API_KEY",
            ),
        ]
        for name, wanted in (
            ("GATE_CONFIRMER=silero", self.gate_confirmer == "silero"),
            ("GATE_MUSIC_LISTENER=true", self.gate_music_listener),
            ("GATE_NOISE_LISTENER=true", self.gate_noise_listener),
        ):
            if wanted and not silero_available():
                rules.append((False, f"{name} needs Silero VAD: {silero_missing()}"))
        broken = [message for ok, message in rules if not ok]
        if broken:
            raise ValueError("; ".join(broken))
        return self

    @property
    def realtime_path(self) -> bool:
        """Calls run on the Realtime API (else on the fallback pipeline)."""
        if self.use_realtime_api is None:
            return bool(self.openai_api_key.get_secret_value())
        return self.use_realtime_api

    @property
    def agent_kind(self) -> Literal["realtime", "agents_sdk", "local"]:
        """The conversation backend after resolving ``auto``."""
        if self.agent_backend != "auto":
            return self.agent_backend
        if self.realtime_path:
            return "realtime"
        return "agents_sdk" if self.openai_api_key.get_secret_value() else "local"

    @property
    def stt_kind(self) -> Literal["openai", "local"]:
        """The fallback path's speech-to-text after resolving ``auto``."""
        if self.stt_backend != "auto":
            return self.stt_backend
        return "openai" if self.openai_api_key.get_secret_value() else "local"

    @property
    def early_stt_ms(self) -> int:
        """``STT_EARLY_MS`` after resolving its default for the STT in use.

        The gate sends a frame every 20 ms while the caller talks, so 150 ms without one is
        a real pause; shorter waits would transcribe at every comma. With OpenAI each stale
        run would be a paid request, so there it waits for the commit.
        """
        if self.stt_early_ms is not None:
            return self.stt_early_ms
        return 150 if self.stt_kind == "local" else 0

    @property
    def tts_kind(self) -> Literal["openai", "piper", "espeak"]:
        """The fallback path's text-to-speech after resolving ``auto``."""
        if self.tts_backend != "auto":
            return self.tts_backend
        return "openai" if self.openai_api_key.get_secret_value() else "piper"

    def gate_options(self) -> GateOptions:
        """The speech gate's options, from these settings."""
        frame = self.audio_frame_size_ms
        return GateOptions(
            frame_ms=frame,
            preroll_ms=self.audio_preroll_ms,
            onset_lookback_ms=self.audio_onset_lookback_ms,
            onset_snr_db=self.audio_onset_snr_db,
            continuation_ms=self.audio_continuation_ms,
            normal=Thresholds(self.snr_start_normal, self.snr_stop_normal),
            music=Thresholds(self.snr_start_music, self.snr_stop_music),
            machine=StateMachineOptions(
                confirm_frames=self.gate_confirm_frames,
                hangover_frames=self.audio_hangover_frames,
                max_candidate_frames=max(self.gate_confirm_frames, 240 // frame),
                word_end_frames=self.audio_word_end_ms // frame,
            ),
            noise=NoiseFloorOptions(frame_ms=frame, calibration_ms=self.noise_calibration_ms),
            talker=TalkerOptions(frame_ms=frame),
            music_detector=MusicOptions(
                frame_ms=frame, on_ms=self.music_on_ms, off_ms=self.music_off_ms
            ),
            bandpass=BandpassOptions(low_hz=self.bandpass_low_hz, high_hz=self.bandpass_high_hz),
            agc=AgcOptions(
                target_dbfs=self.agc_target_dbfs,
                max_gain_db=self.agc_max_gain_db,
                max_cut_db=self.agc_max_cut_db,
                max_step_db=self.agc_max_step_db,
                frame_ms=frame,
            ),
            confirmer=self.gate_confirmer,
            confirmer_threshold=self.gate_confirmer_threshold,
            music_residual=self.gate_music_residual,
            music_listener=self.gate_music_listener or self.gate_noise_listener,
            noise_listener=self.gate_noise_listener,
            listener_threshold=self.gate_listener_threshold,
            listener_below_db=self.gate_listener_below_db,
        )

    def legacy_vad_options(self) -> LegacyVadOptions:
        """The legacy energy VAD's options, from these settings."""
        return LegacyVadOptions(
            min_speech_rms=self.min_speech_rms,
            frame_ms=self.audio_frame_size_ms,
            preroll_ms=self.audio_preroll_ms,
            hangover_frames=self.audio_hangover_frames,
        )

    def build_gate(self, kind: VadKind = "gate") -> FrameGate:
        """A fresh gate for one call or one recording: the speech gate or the legacy VAD."""
        if kind == "gate":
            return SpeechGate(self.gate_options())
        if kind == "legacy":
            return LegacyEnergyVad(self.legacy_vad_options())
        raise ConfigError(f"unknown VAD {kind!r}; expected 'gate' or 'legacy'")


def _turn_model_missing() -> str:
    """Why the end-of-turn model cannot run here ('' when it can)."""
    # Imported here: callgate.realtime's package imports this module.
    from callgate.realtime.end_of_turn import missing  # noqa: PLC0415

    return missing()


def _describe(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        names = [str(part).upper() for part in item["loc"]]
        where = ".".join(names) if names else "settings"
        message = item["msg"].removeprefix("Value error, ")
        value = item.get("input")
        shown = f" (got {value!r})" if names and not isinstance(value, dict) else ""
        lines.append(f"{where}: {message}{shown}" if names else message)
    return "invalid configuration: " + "; ".join(lines)


def load_settings(
    overrides: Mapping[str, Any] | None = None, *, env_file: str | None = ".env"
) -> Settings:
    """Read the environment (and ``env_file``), apply ``overrides``, validate everything.

    ``overrides`` take mission-style names (``SNR_START_NORMAL``) or field names, in any case,
    and win over the environment, as ``callgate analyze --set`` needs. Unknown names are an
    error, since a typo in a tuning run would otherwise silently do nothing.
    """
    known = set(Settings.model_fields)
    values: dict[str, Any] = {}
    for name, value in (overrides or {}).items():
        field = name.lower()
        if field not in known:
            raise ConfigError(f"unknown setting {name.upper()!r}; see the README for the list")
        values[field] = value
    try:
        return Settings(_env_file=env_file, **values)
    except ValidationError as error:
        raise ConfigError(_describe(error)) from None
