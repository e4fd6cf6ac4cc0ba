"""Prometheus metrics of one app instance.

Each app has its own registry, so tests that build several apps do not collide. The
frame-to-append histogram is the bridge's latency budget. It runs from a frame's due time
(the stream's start plus the frame's Twilio timestamp) to the moment its audio was handed
to the model connection. So a server that falls behind shows its queueing delay too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS_S = (
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.25, 1.0,
)  # fmt: skip


@dataclass
class BridgeMetrics:
    """The counters and histograms of the call bridge."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.live_calls = Gauge("callgate_live_calls", "Calls in progress.", registry=r)
        self.calls = Counter(
            "callgate_calls", "Calls handled, by end reason.", ["reason"], registry=r
        )
        self.frames_in = Counter(
            "callgate_frames_in", "Caller frames analysed by the gate.", registry=r
        )
        self.frames_sent = Counter(
            "callgate_frames_sent", "Caller frames sent to the model.", registry=r
        )
        self.frames_withheld = Counter(
            "callgate_frames_withheld", "Caller frames the gate kept from the model.", registry=r
        )
        self.frames_listened = Counter(
            "callgate_frames_listened",
            "Caller frames the gate's neural listener (Silero) heard: GATE_MUSIC_LISTENER or "
            "GATE_NOISE_LISTENER at work, about 120 us of CPU each.",
            registry=r,
        )
        self.barge_ins = Counter(
            "callgate_barge_ins", "Agent audio interrupted by the caller.", registry=r
        )
        self.protocol_errors = Counter(
            "callgate_twilio_protocol_errors", "Bad messages from Twilio's side.", registry=r
        )
        self.model_reconnects = Counter(
            "callgate_model_reconnects", "Model connections restored mid-call.", registry=r
        )
        self.frame_to_append = Histogram(
            "callgate_frame_to_append_seconds",
            "From a media frame's due time on the stream clock to its append to the model.",
            buckets=_LATENCY_BUCKETS_S,
            registry=r,
        )
