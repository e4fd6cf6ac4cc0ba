"""What the speech gate is told: its thresholds, timings and the options of every stage.

The defaults are the mission's starting values and what the gate benchmark settled on;
each says where it came from. ``callgate.config.Settings.gate_options`` builds these from
the environment. Invalid combinations raise ``ValueError`` naming the rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from callgate.audio.agc import AgcOptions
from callgate.audio.bandpass import BandpassOptions
from callgate.audio.codec import SAMPLE_RATE_HZ
from callgate.audio.music import MusicOptions
from callgate.audio.noise_floor import NoiseFloorOptions
from callgate.audio.state_machine import StateMachineOptions
from callgate.audio.talker import TalkerOptions


@dataclass(frozen=True, slots=True)
class Thresholds:
    """A start/stop SNR pair, in dB. Start opens the gate; stop begins the hangover."""

    start_db: float
    stop_db: float

    def __post_init__(self) -> None:
        if self.start_db < self.stop_db:
            raise ValueError(f"start threshold {self.start_db} dB is below stop {self.stop_db} dB")


@dataclass(frozen=True, slots=True)
class GateOptions:
    """Everything the gate needs; defaults are the mission's starting values."""

    frame_ms: int = 20
    """Analysis frame, in ms (AUDIO_FRAME_SIZE_MS)."""
    preroll_ms: int = 200
    """Audio sent from before the onset, in ms (AUDIO_PREROLL_MS).

    The onset is the first MAYBE_SPEECH frame of the attempt that was confirmed, so the
    candidate frames are always sent too, on top of the pre-roll."""
    attempt_gap_ms: int = 200
    """Candidates closer together than this form one attempt: a word that opens with a long
    unvoiced consonant may be rejected and re-opened before its vowel confirms it, and its
    pre-roll must still reach back to the consonant."""
    max_attempt_ms: int = 1000
    """Longest stretch of candidate audio released at an onset, in ms."""
    onset_lookback_ms: int = 480
    """Longest reach before the onset when the signal says speech began earlier, in ms
    (AUDIO_ONSET_LOOKBACK_MS). A soft onset in noise stays below the start threshold for
    200-300 ms, and a short first syllable may be rejected before the next one confirms:
    at confirmation the gate walks back over the caller's earlier syllables and the soft
    start before them (frames at or above ``onset_snr_db``) and sends from there. The
    frames go out late, at confirmation, like the pre-roll. Never less than the pre-roll;
    0 (or any value up to ``preroll_ms``) turns the lookback off."""
    onset_snr_db: float = 4.0
    """SNR a frame before the onset needs to count as the start of the speech, in dB
    (AUDIO_ONSET_SNR_DB)."""
    onset_dip_frames: int = 1
    """Quieter frames the lookback steps over inside the soft start of a word."""
    onset_gap_frames: int = 20
    """Most frames between two syllables the lookback still takes for one stretch of speech:
    a short first syllable whose candidate was rejected belongs to the words that follow."""
    normal: Thresholds = field(default_factory=lambda: Thresholds(8.0, 5.0))
    """SNR thresholds without music (SNR_START_NORMAL / SNR_STOP_NORMAL)."""
    music: Thresholds = field(default_factory=lambda: Thresholds(12.0, 8.0))
    """SNR thresholds while music is detected (SNR_START_MUSIC / SNR_STOP_MUSIC)."""
    machine: StateMachineOptions = field(default_factory=StateMachineOptions)
    """Confirmation, hangover (AUDIO_HANGOVER_FRAMES) and voicing rules."""
    noise: NoiseFloorOptions = field(default_factory=NoiseFloorOptions)
    """Noise floor calibration (NOISE_CALIBRATION_MS) and tracking."""
    music_detector: MusicOptions = field(default_factory=MusicOptions)
    """When music switches the stricter thresholds on and off."""
    bandpass: BandpassOptions = field(default_factory=BandpassOptions)
    """Speech-band filter applied before measuring level."""
    agc: AgcOptions = field(default_factory=AgcOptions)
    """Gain applied to sent frames."""
    talker: TalkerOptions = field(default_factory=TalkerOptions)
    """How far below the caller's own level a new candidate may be."""
    held_tone_share: float = 0.5
    """A held tone is judged unvoiced: a frame whose spectral peaks carry at least this
    share of their energy in peaks that have held their pitch for ``music_detector.held_ms``
    while the level stayed within ``held_tone_spread_db`` over the same time (a car horn).
    Voices glide and pulse with the syllables. Street noise-only false triggers 2.8% ->
    1.7%, nothing else changed (gate benchmark 2026-11-25). Above 1 turns the rule off."""
    held_tone_spread_db: float = 3.0
    """Largest level swing over ``music_detector.held_ms`` that still counts as held."""
    music_residual: bool = True
    """While music plays, let the SNR of what is left once the held notes are taken out
    open and confirm candidates too (GATE_MUSIC_RESIDUAL). A voice over music adds energy
    between the notes' spectral peaks, where the level SNR hardly moves. Quick note changes
    (hold music) do the same for a moment, so a peak is taken out of the residual once it
    has stayed in its bin for ``machine.confirm_frames`` frames."""
    continuation_ms: int = 120
    """A candidate that opens within this long after the caller's speech ended is held to
    the talker rule's continue margin (18 dB), not its start margin (14 dB)
    (AUDIO_CONTINUATION_MS). A sentence's soft last word ("answered", "evening") often
    comes back as a candidate right after the hangover ran out in the dip before it, well
    below the caller's vowels; the start margin took it for another talker. Piper sentences
    through the gate, last word heard in a quiet room: 50 -> 56 of 60 (gate ASR benchmark,
    2026-11-26)."""
    music_listener: bool = False
    """While loud music plays, run Silero VAD on every frame and let it open and confirm
    candidates (GATE_MUSIC_LISTENER): a caller at 0-5 dB under loud music is invisible to
    the SNR. Silero runs only then, so it costs CPU during loud music only."""
    listener_threshold: float = 0.7
    """Silero probability at which a frame counts as above the start threshold and voiced."""
    noise_listener: bool = False
    """Let the listener run under any loud background, not only music
    (GATE_NOISE_LISTENER; implies ``music_listener``): a caller at 0-5 dB under a fan or
    an open window is invisible to the SNR too. Gate benchmark (2026-11-26): first 100 ms
    lost 14.8% -> 9.3% of utterances (Silero alone 7.3%) for 0.002 F1 (fan and open
    window -0.015, still well ahead of Silero's)."""
    listener_below_db: float = 10.0
    """The background counts as loud when its floor is less than this far below the
    caller's level (or the caller is not known yet). Under a weaker one the SNR does better
    alone. With the noise listener, 14 dB kept the first 100 ms of more utterances (7.9%
    lost) at 0.004 F1 more; 6 dB lost 11.2%."""
    confirmer: str = "none"
    """Second stage for candidates: 'none' or 'silero' (Silero VAD, ONNX)."""
    confirmer_threshold: float = 0.5
    """Silero speech probability a candidate needs."""

    def __post_init__(self) -> None:
        if self.frame_ms <= 0 or (self.frame_ms * SAMPLE_RATE_HZ) % 1000:
            raise ValueError(f"frame_ms must give whole samples at 8 kHz, got {self.frame_ms}")
        if self.preroll_ms < 0 or self.preroll_ms % self.frame_ms:
            raise ValueError(
                f"preroll_ms ({self.preroll_ms}) must be a non-negative multiple of "
                f"frame_ms ({self.frame_ms})"
            )
        if self.music.start_db < self.normal.start_db:
            raise ValueError("music start threshold must not be below the normal one")
        if self.attempt_gap_ms < 0 or self.max_attempt_ms < self.frame_ms:
            raise ValueError("attempt_gap_ms must be >= 0 and max_attempt_ms at least one frame")
        if self.onset_lookback_ms < 0 or self.onset_lookback_ms % self.frame_ms:
            raise ValueError(
                f"onset_lookback_ms ({self.onset_lookback_ms}) must be a non-negative multiple "
                f"of frame_ms ({self.frame_ms})"
            )
        if self.held_tone_share <= 0 or self.held_tone_spread_db < 0:
            raise ValueError("held_tone_share must be > 0 and held_tone_spread_db >= 0")
        if self.onset_dip_frames < 0 or self.onset_gap_frames < 0:
            raise ValueError("onset_dip_frames and onset_gap_frames must be >= 0")
        for name in ("noise", "music_detector", "agc", "talker"):
            if getattr(self, name).frame_ms != self.frame_ms:
                raise ValueError(f"{name}.frame_ms must equal frame_ms ({self.frame_ms})")

    @property
    def frame_samples(self) -> int:
        """Samples per frame at 8 kHz."""
        return self.frame_ms * SAMPLE_RATE_HZ // 1000

    @property
    def preroll_frames(self) -> int:
        """Pre-roll length in frames."""
        return self.preroll_ms // self.frame_ms

    @property
    def lookback_frames(self) -> int:
        """Longest reach before the onset in frames: the pre-roll or the onset lookback."""
        return max(self.preroll_ms, self.onset_lookback_ms) // self.frame_ms
