"""The end-of-turn model in the client turn mode: the controller with a fake model, and
the real Smart Turn v3.2 ONNX file from the pipecat-ai wheel."""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import replace

import numpy as np
import pytest

from benchmarks.run_turn_benchmark import CachedModel, TurnConfig, commit_frames
from callgate.audio.decision import SILENCE, SPEECH
from callgate.config import ConfigError, load_settings
from callgate.realtime import end_of_turn
from callgate.realtime.turns import (
    AppendAudio,
    CommitInput,
    CreateResponse,
    PredictTurnEnd,
    TurnController,
    TurnOptions,
)
from callgate.server.call import CallSession, turn_options
from callgate.synth.speech import espeak_available, speak
from callgate.telephony.media_streams import Connected, Media, Start
from tests.test_turns import FRAME, frame, silence, utterance


def model_controller(ask_ms: int = 200, cap_ms: int = 600, **kw: object) -> TurnController:
    return TurnController(
        TurnOptions(
            mode="client",
            end_of_turn_silence_ms=cap_ms,
            early_end_ms=ask_ms,
            ask_model=True,
            **kw,  # type: ignore[arg-type]
        )
    )


def requests(actions: Sequence[object]) -> list[PredictTurnEnd]:
    return [a for a in actions if isinstance(a, PredictTurnEnd)]


def commits(actions: Sequence[object]) -> int:
    return sum(isinstance(a, CommitInput) for a in actions)


def test_asks_once_after_the_short_silence_and_commits_early_on_complete() -> None:
    c = model_controller(ask_ms=200)
    assert requests(utterance(c, 0, 50)) == []
    assert requests(silence(c, 50, 9)) == []  # 180 ms: not yet
    [request] = requests(silence(c, 59, 1))  # 200 ms
    assert requests(silence(c, 60, 3)) == []  # one request per pause
    assert c.prediction_wanted(request.request_id)
    assert c.on_turn_prediction(request.request_id, 0.9) == [CommitInput(), CreateResponse()]
    assert (c.commits, c.early_commits, c.predictions) == (1, 1, 1)
    assert not c.prediction_wanted(request.request_id)
    assert silence(c, 63, 100) == []  # the silence timeout has nothing left to commit


def test_incomplete_waits_for_the_full_silence() -> None:
    c = model_controller(ask_ms=200, cap_ms=600)
    utterance(c, 0, 50)
    [request] = requests(silence(c, 50, 10))
    assert c.on_turn_prediction(request.request_id, 0.2) == []
    assert commits(silence(c, 60, 19)) == 0  # 580 ms of silence
    assert commits(silence(c, 79, 1)) == 1  # 600 ms: the cap ends the turn
    assert (c.commits, c.early_commits) == (1, 0)


def test_threshold_is_inclusive_and_configurable() -> None:
    c = model_controller(model_threshold=0.8)
    utterance(c, 0, 50)
    [r] = requests(silence(c, 50, 10))
    assert c.on_turn_prediction(r.request_id, 0.79) == []
    c2 = model_controller(model_threshold=0.8)
    utterance(c2, 0, 50)
    [r2] = requests(silence(c2, 50, 10))
    assert commits(c2.on_turn_prediction(r2.request_id, 0.8)) == 1


def test_an_answer_after_the_caller_went_on_is_ignored() -> None:
    c = model_controller(ask_ms=200)
    utterance(c, 0, 50)
    [old] = requests(silence(c, 50, 10))
    c.on_frame(frame(60, SPEECH))  # the caller resumes before the answer arrives
    assert not c.prediction_wanted(old.request_id)
    assert c.on_turn_prediction(old.request_id, 0.99) == []
    assert c.commits == 0
    [new] = requests(silence(c, 61, 10))  # the next pause asks again
    assert new.request_id != old.request_id
    assert c.on_turn_prediction(old.request_id, 0.99) == []  # still stale
    assert commits(c.on_turn_prediction(new.request_id, 0.99)) == 1


def test_an_answer_after_the_timeout_commit_is_ignored() -> None:
    c = model_controller(ask_ms=200, cap_ms=600)
    utterance(c, 0, 50)
    [r] = requests(silence(c, 50, 10))
    assert commits(silence(c, 60, 20)) == 1  # the model was too slow
    assert c.on_turn_prediction(r.request_id, 0.99) == []
    assert (c.commits, c.early_commits) == (1, 0)


def test_a_noisy_pause_keeps_the_turn_open_under_the_snr_guard() -> None:
    c = model_controller(ask_ms=200, clean_pause_snr_db=3.0)
    utterance(c, 0, 50)
    silence(c, 50, 5)
    weak = replace(frame(55, SILENCE), snr_db=4.0)  # weak speech the gate did not send
    c.on_frame(weak)
    [r] = requests(silence(c, 56, 4))
    assert c.on_turn_prediction(r.request_id, 0.99) == []  # the pause was not clean
    assert commits(silence(c, 60, 20)) == 1  # the silence timeout still ends it
    clean = model_controller(ask_ms=200, clean_pause_snr_db=3.0)
    utterance(clean, 0, 50)
    [r2] = requests(silence(clean, 50, 10))  # the helper's silent frames are at 0 dB
    assert commits(clean.on_turn_prediction(r2.request_id, 0.99)) == 1


def test_without_the_model_a_clean_pause_alone_ends_the_turn_early() -> None:
    def controller() -> TurnController:
        return TurnController(
            TurnOptions(end_of_turn_silence_ms=1000, early_end_ms=200, clean_pause_snr_db=3.0)
        )

    c = controller()
    utterance(c, 0, 50)
    actions = silence(c, 50, 10)
    assert requests(actions) == []
    assert commits(actions) == 1
    assert (c.commits, c.early_commits, c.predictions) == (1, 1, 0)
    noisy = controller()
    utterance(noisy, 0, 50)
    noisy.on_frame(replace(frame(50, SILENCE), snr_db=3.0))  # at the limit: not clean
    assert commits(silence(noisy, 51, 9)) == 0
    assert commits(silence(noisy, 60, 39)) == 0  # 980 ms
    assert commits(silence(noisy, 99, 1)) == 1  # 1000 ms: the silence timeout


def test_the_model_hears_the_sent_audio_with_real_pauses_and_no_repeats() -> None:
    c = model_controller(ask_ms=200, cap_ms=2000)
    utterance(c, 0, 20)  # 13 frames at the onset (pre-roll), then 16 more: 29 frames
    silence(c, 20, 5)  # a short pause inside the turn: 5 frames of digital silence ...
    utterance(c, 25, 10)  # ... 3 of them re-sent as this onset's pre-roll (12 frames)
    [r] = requests(silence(c, 35, 10))
    assert r.pcm16.dtype == np.int16
    # 29 + (5 + 3 candidates - 8 replaced by pre-roll) + 13 + 6 + 10 silent frames
    assert r.pcm16.size == (29 + 0 + 13 + 6 + 10) * FRAME
    assert np.all(r.pcm16[-10 * FRAME :] == 0)  # the pause so far, as digital silence
    assert np.all(r.pcm16[: 29 * FRAME] == 1000)  # sent audio as it was sent


def test_the_model_hears_at_most_the_window_and_a_fresh_turn_after_a_commit() -> None:
    c = model_controller(ask_ms=200, cap_ms=600, model_window_ms=1000)
    utterance(c, 0, 200)
    [r] = requests(silence(c, 200, 10))
    assert r.pcm16.size == 50 * FRAME  # the last 1000 ms only
    c.on_turn_prediction(r.request_id, 0.9)
    utterance(c, 300, 10)
    [r2] = requests(silence(c, 310, 10))
    assert r2.pcm16.size == (13 + 6 + 10) * FRAME  # nothing of the committed turn


def test_without_a_model_or_outside_client_mode_nothing_is_asked() -> None:
    plain = TurnController(TurnOptions(mode="client"))
    assert requests(utterance(plain, 0, 50) + silence(plain, 50, 40)) == []
    server = TurnController(TurnOptions(mode="server_vad", early_end_ms=200, ask_model=True))
    actions = utterance(server, 0, 50) + silence(server, 50, 40)
    assert requests(actions) == []
    assert commits(actions) == 0
    assert any(isinstance(a, AppendAudio) and a.padding for a in actions)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"early_end_ms": 10}, "early_end_ms"),
        ({"early_end_ms": 800}, "early_end_ms"),
        ({"early_end_ms": 200, "model_threshold": 1.5}, "model_threshold"),
        ({"early_end_ms": 200, "model_window_ms": 0}, "model_window_ms"),
    ],
)
def test_bad_model_options_are_refused(kw: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TurnOptions(end_of_turn_silence_ms=600, **kw)  # type: ignore[arg-type]


def test_prepare_keeps_the_last_8_s_at_16_khz_padded_at_the_start() -> None:
    short = end_of_turn.prepare(np.full(8000, 1000, dtype=np.int16))
    assert short.shape == (128_000,)
    assert np.all(short[:100_000] == 0)
    assert abs(float(short[-8000]) - 1000 / 32768) < 1e-3
    long = np.concatenate([np.full(8000, 5000, np.int16), np.zeros(64_000, np.int16)])
    assert np.all(end_of_turn.prepare(long) == 0)  # the loud first second is cut off
    assert end_of_turn.prepare(np.zeros(0, np.int16)).shape == (128_000,)


PIPECAT = importlib.util.find_spec("pipecat") is not None
needs_pipecat = pytest.mark.skipif(
    not PIPECAT, reason="pipecat-ai is not installed (scripts/bootstrap.sh installs it)"
)


@needs_pipecat
def test_log_mel_matches_pipecats_reference_features() -> None:
    path = end_of_turn.model_path().parent.parent / "_whisper_features.py"
    spec = importlib.util.spec_from_file_location("pipecat_whisper_features", path)
    assert spec is not None
    assert spec.loader is not None
    reference = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(reference)
    rng = np.random.default_rng(7)
    audio = np.zeros(128_000, dtype=np.float32)
    audio[40_000:] = rng.standard_normal(88_000).astype(np.float32) * 0.1
    ours = end_of_turn.log_mel(audio)
    assert ours.shape == (80, 800)
    np.testing.assert_allclose(ours, reference.compute_whisper_log_mel_features(audio), atol=1e-5)


@needs_pipecat
@pytest.mark.espeak
def test_the_real_model_loads_and_tells_a_finished_sentence_from_a_cut_one() -> None:
    if not espeak_available():
        pytest.skip("espeak-ng is not installed")
    model = end_of_turn.SmartTurnModel()
    pause = np.zeros(1600, dtype=np.int16)

    def pcm(text: str) -> np.ndarray:
        audio = speak(text, sample_rate_hz=8000)
        return np.concatenate([(np.clip(audio, -1, 1) * 32767).astype(np.int16), pause])

    done = model.predict(pcm("My name is Daniel Cohen."))
    cut = model.predict(pcm("Hello, I am calling about my"))
    assert 0.0 <= cut <= 1.0
    assert 0.0 <= done <= 1.0
    assert done > 0.5 > cut


def test_settings_build_the_model_options_and_refuse_bad_ones() -> None:
    off = turn_options(load_settings({"END_OF_TURN_MODEL": "none"}, env_file=None))
    assert not off.uses_model
    if PIPECAT:
        on = turn_options(
            load_settings(
                {
                    "END_OF_TURN_MODEL": "smart_turn",
                    "END_OF_TURN_MIN_SILENCE_MS": 160,
                    "END_OF_TURN_MODEL_THRESHOLD": 0.7,
                },
                env_file=None,
            )
        )
        assert (on.uses_model, on.early_end_ms, on.model_threshold) == (True, 160, 0.7)
    quiet = turn_options(load_settings({"END_OF_TURN_CLEAN_PAUSE_SNR_DB": 3}, env_file=None))
    assert (quiet.ends_early, quiet.uses_model, quiet.clean_pause_snr_db) == (True, False, 3.0)
    with pytest.raises(ConfigError, match="END_OF_TURN_MIN_SILENCE_MS"):
        load_settings(
            {"END_OF_TURN_MODEL": "smart_turn", "END_OF_TURN_MIN_SILENCE_MS": 700}, env_file=None
        )
    with pytest.raises(ConfigError, match="END_OF_TURN_MODEL_THRESHOLD"):
        load_settings({"END_OF_TURN_MODEL_THRESHOLD": 1.5}, env_file=None)
    with pytest.raises(ConfigError, match="END_OF_TURN_MODEL"):
        load_settings({"END_OF_TURN_MODEL": "bert"}, env_file=None)


def test_a_missing_pipecat_package_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(end_of_turn.EndOfTurnModelError, match="pipecat-ai"):
        end_of_turn.model_path()


def test_a_missing_onnxruntime_is_named_at_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name: None if name == "onnxruntime" else real(name)
    )
    assert "onnxruntime" in end_of_turn.missing()
    with pytest.raises(ConfigError, match=r"END_OF_TURN_MODEL: .*onnxruntime"):
        load_settings({"END_OF_TURN_MODEL": "smart_turn"}, env_file=None)


class _ScriptedGate:
    """A gate that answers each 20 ms payload with the next scripted decision."""

    def __init__(self, decisions: list[object]) -> None:
        self.decisions = list(decisions)
        self.start_boost_db = 0.0
        self.frames_seen = self.frames_sent = self.frames_withheld = self.frames_listened = 0

    def process_ulaw(self, payload: bytes) -> list[object]:
        self.frames_seen += 1
        return [self.decisions.pop(0)] if self.decisions else []


class _Link:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.closed = asyncio.Event()

    async def append_audio(self, pcmu: bytes) -> None:
        self.calls.append("append")

    async def commit(self) -> None:
        self.calls.append("commit")

    async def create_response(self) -> None:
        self.calls.append("create")

    async def cancel_response(self) -> None:
        self.calls.append("cancel")

    async def truncate(self, item_id: str, content_index: int, audio_end_ms: int) -> None:
        self.calls.append("truncate")

    async def add_text_item(self, role: str, text: str) -> None:
        self.calls.append("text")

    async def events(self) -> AsyncIterator[object]:
        await self.closed.wait()
        return
        yield

    async def close(self) -> None:
        self.closed.set()


class _Socket:
    def __init__(self) -> None:
        self.inbox: asyncio.Queue[str] = asyncio.Queue()

    async def send_text(self, data: str) -> None:
        pass

    async def receive_text(self) -> str:
        text = await self.inbox.get()
        if not text:
            raise ConnectionError("closed")
        return text

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        self.inbox.put_nowait("")


class _Runner:
    """The server's model runner, answering from the event loop's point of view later."""

    def __init__(self, probability: float) -> None:
        self.probability = probability
        self.release = asyncio.Event()
        self.asked: list[int] = []
        self.cancelled = False
        self.wanted: Callable[[], bool] | None = None

    async def predict(self, pcm16: np.ndarray, wanted: Callable[[], bool]) -> float | None:
        self.asked.append(pcm16.size)
        self.wanted = wanted
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        return self.probability if wanted() else None


async def _call_with_model(
    probability: float, resume: bool, answer: bool = True
) -> tuple[list[str], _Runner]:
    settings = load_settings({"END_OF_TURN_SILENCE_MS": 600}, env_file=None)
    settings = settings.model_copy(
        update={"end_of_turn_model": "smart_turn", "end_of_turn_min_silence_ms": 200}
    )
    decisions: list[object] = [frame(0, SPEECH, preroll=2, onset=True)]
    decisions += [frame(i, SPEECH) for i in range(1, 20)]
    decisions += [frame(i, SILENCE) for i in range(20, 30)]  # the model is asked at 30
    if resume:
        decisions += [frame(30, SPEECH)]
    link, socket, runner = _Link(), _Socket(), _Runner(probability)
    call = CallSession(
        settings,
        socket,
        lambda sid: _opened(link),
        gate=_ScriptedGate(decisions),  # type: ignore[arg-type]
        turn_model=runner,  # type: ignore[arg-type]
    )
    task = asyncio.create_task(call.run())
    sid, call_sid = "MZ" + "0" * 32, "CA" + "1" * 32
    await socket.inbox.put(Connected().serialize())
    start = Start(
        sequence_number=1,
        stream_sid=sid,
        account_sid="AC" + "2" * 32,
        call_sid=call_sid,
        custom_parameters={},
    )
    await socket.inbox.put(start.serialize())
    for k in range(len(decisions)):
        media = Media(
            sequence_number=k + 2,
            stream_sid=sid,
            payload=b"\xff" * 160,
            chunk=k + 1,
            timestamp_ms=k * 20,
        )
        await socket.inbox.put(media.serialize())
    for _ in range(200):
        if call.gate.frames_seen == len(decisions) and runner.asked:
            break
        await asyncio.sleep(0.005)
    if answer:
        runner.release.set()
    await asyncio.sleep(0.05)
    calls = list(link.calls)
    await call.end("test over")
    await asyncio.wait_for(task, 5)
    return calls, runner


async def _opened(link: _Link) -> _Link:
    return link


def test_the_server_commits_on_the_models_answer_off_the_event_loop() -> None:
    calls, runner = asyncio.run(_call_with_model(0.9, resume=False))
    assert len(runner.asked) == 1
    assert runner.asked[0] > 0
    assert calls[-2:] == ["commit", "create"]


def test_the_server_ignores_an_answer_after_the_caller_went_on() -> None:
    calls, runner = asyncio.run(_call_with_model(0.9, resume=True))
    assert len(runner.asked) == 1
    assert "commit" not in calls


def test_a_prediction_still_pending_when_the_call_ends_is_cancelled_and_unwanted() -> None:
    calls, runner = asyncio.run(_call_with_model(0.9, resume=False, answer=False))
    assert len(runner.asked) == 1
    assert runner.cancelled
    assert runner.wanted is not None
    assert not runner.wanted()  # a request still queued for the model is skipped
    assert "commit" not in calls


def test_the_server_waits_for_the_timeout_when_the_model_says_incomplete() -> None:
    calls, _ = asyncio.run(_call_with_model(0.1, resume=False))
    assert "commit" not in calls  # 200 ms of silence only; the 600 ms timeout has not come


class _FixedModel:
    def __init__(self, probability: float) -> None:
        self.probability = probability

    def predict(self, pcm16_8k: np.ndarray) -> float:
        return self.probability


def test_the_turn_benchmark_delivers_answers_after_the_modelled_latency() -> None:
    decisions = [frame(0, SPEECH, preroll=2, onset=True)]
    decisions += [frame(i, SPEECH) for i in range(1, 20)]
    decisions += [frame(i, SILENCE) for i in range(20, 80)]
    config = TurnConfig(silence_ms=1000, early_ms=200, threshold=0.5)
    # asked at frame 29 (the 10th silent frame); the answer lands 5 frames later
    commits_at, turns = commit_frames(decisions, config, CachedModel(_FixedModel(0.9)), 5)
    assert commits_at == [34]
    assert turns.early_commits == 1
    timeout, _ = commit_frames(decisions, config, CachedModel(_FixedModel(0.1)), 5)
    assert timeout == [69]  # incomplete: the 50th silent frame (1000 ms) ends the turn
    resumed = [*decisions[:32], frame(32, SPEECH), *decisions[33:]]
    late, _ = commit_frames(resumed, config, CachedModel(_FixedModel(0.9)), 5)
    assert late == [47]  # the answer at 34 was stale; the next pause asks again at 42


def test_the_runner_loads_once_on_its_thread_and_skips_unwanted_requests() -> None:
    loads: list[int] = []

    def load() -> _FixedModel:
        loads.append(1)
        return _FixedModel(0.75)

    async def scenario() -> tuple[float | None, float | None, float | None]:
        runner = end_of_turn.TurnModelRunner(load)
        skipped = await runner.predict(np.zeros(160, np.int16), lambda: False)
        first = await runner.predict(np.zeros(160, np.int16), lambda: True)
        second = await runner.predict(np.zeros(160, np.int16), lambda: True)
        return skipped, first, second

    assert asyncio.run(scenario()) == (None, 0.75, 0.75)
    assert len(loads) == 1  # not loaded for the skipped request, then kept
