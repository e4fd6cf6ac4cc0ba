"""The legacy energy VAD (MIN_SPEECH_RMS) for the fallback pipeline.

A frame is speech when its raw RMS reaches a fixed threshold. It knows nothing of the
room, so it is only used when USE_REALTIME_API=false, and it has the same interface and
the same pre-roll and hangover as the speech gate so the two can be swapped and compared.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from callgate.audio.codec import SAMPLE_RATE_HZ, ulaw_to_pcm16
from callgate.audio.decision import SILENCE, SPEECH, FrameDecision
from callgate.audio.framing import Reframer
from callgate.audio.level import frame_rms, rms_to_dbfs
from callgate.audio.preroll import PrerollBuffer

_EMPTY = np.zeros(0, dtype=np.int16)


@dataclass(frozen=True, slots=True)
class LegacyVadOptions:
    """Settings of the energy VAD."""

    min_speech_rms: float = 300.0
    """Frame RMS on the int16 scale that counts as speech (MIN_SPEECH_RMS)."""
    frame_ms: int = 20
    """Analysis frame, in ms."""
    preroll_ms: int = 200
    """Audio sent from before the onset, in ms."""
    hangover_frames: int = 4
    """Frames still sent after the level drops below the threshold."""

    def __post_init__(self) -> None:
        if self.min_speech_rms <= 0:
            raise ValueError(f"min_speech_rms must be positive, got {self.min_speech_rms}")
        if self.frame_ms <= 0 or self.preroll_ms % self.frame_ms or self.hangover_frames < 0:
            raise ValueError("preroll_ms must be a multiple of frame_ms, hangover_frames >= 0")


class LegacyEnergyVad:
    """Fixed-threshold energy VAD with pre-roll and hangover."""

    def __init__(self, options: LegacyVadOptions | None = None) -> None:
        self.options = options or LegacyVadOptions()
        o = self.options
        self._frame_samples = o.frame_ms * SAMPLE_RATE_HZ // 1000
        self._threshold_dbfs = rms_to_dbfs(o.min_speech_rms / 32768.0)
        self._reframer = Reframer(self._frame_samples)
        self._preroll = PrerollBuffer(o.preroll_ms // o.frame_ms, self._frame_samples)
        self.reset()

    @property
    def frame_samples(self) -> int:
        """Samples per analysis frame at 8 kHz."""
        return self._frame_samples

    @property
    def frames_seen(self) -> int:
        """Frames decided since the start of the call."""
        return self._frames

    @property
    def frames_withheld(self) -> int:
        """Frames never passed on."""
        return self._frames - self.frames_sent

    @property
    def frames_listened(self) -> int:
        """Always 0: the energy VAD has no neural listener."""
        return 0

    def reset(self) -> None:
        """Forget everything, as at the start of a new call."""
        self._reframer.reset()
        self._preroll.clear()
        self._speaking = False
        self._below = 0
        self._frames = 0
        self.frames_sent = 0
        self.start_boost_db = 0.0
        """Extra dB over MIN_SPEECH_RMS needed to start (the call's echo guard)."""

    def process_ulaw(self, data: bytes) -> list[FrameDecision]:
        """Feed mu-law bytes; one decision per completed frame."""
        return self.process_pcm16(ulaw_to_pcm16(data))

    def process_pcm16(self, samples: npt.ArrayLike) -> list[FrameDecision]:
        """Feed int16 samples at 8 kHz; one decision per completed frame."""
        pcm = np.asarray(samples, dtype=np.int16).reshape(-1)
        return [self._process_frame(frame) for frame in self._reframer.push(pcm)]

    def _process_frame(self, frame: npt.NDArray[np.int16]) -> FrameDecision:
        index = self._frames
        self._frames += 1
        level = rms_to_dbfs(frame_rms(frame.astype(np.float64) / 32768.0))
        start = self._threshold_dbfs + (0.0 if self._speaking else self.start_boost_db)
        loud = level >= start
        preroll: list[npt.NDArray[np.int16]] = []
        if loud:
            reason = "speech" if self._speaking else "onset"
            if not self._speaking:
                preroll = self._preroll.drain()
            self._speaking = True
            self._below = 0
        elif self._speaking:
            self._below += 1
            self._speaking = self._below <= self.options.hangover_frames
            reason = "hangover" if self._speaking else "end of speech"
        else:
            reason = "below MIN_SPEECH_RMS"
        if self._speaking:
            self.frames_sent += 1 + len(preroll)
            audio = np.concatenate([*preroll, frame]) if preroll else frame
        else:
            audio = _EMPTY
            self._preroll.push(frame)
        return FrameDecision(
            index=index,
            t_ms=index * self.options.frame_ms,
            state=SPEECH if self._speaking else SILENCE,
            sent=self._speaking,
            preroll_frames=len(preroll),
            snr_db=level - self._threshold_dbfs,
            level_dbfs=level,
            noise_dbfs=self._threshold_dbfs,
            music=False,
            gain_db=0.0,
            start_threshold_db=0.0,
            stop_threshold_db=0.0,
            voicing=0.0,
            reason=reason,
            audio=audio,
        )
