"""An embedded champion whose answer the tests know in advance, and a synthetic benchmark video.

The champion is a real grounding bundle: the embedded default's prompting configuration (params.yaml),
the session's trained detector, and a tiny Qwen2.5-VL whose saved generation config carries a
``sequence_bias`` spelling one fixed answer. Generation is real (processor, vision tower, ``generate``
with the request's options), so ``max_new_tokens=1`` really cuts the answer, while what it answers
is known — the tests can check the ID, the span and the tube exactly (an oracle), which a random tiny
policy would not allow.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from stvg.config import Params, TinyModelParams, load_params

ANSWER_ID, ANSWER_SPAN = 1, (1.0, 4.0)  # the embedded champion's fixed answer


@dataclass(frozen=True)
class BenchmarkVideo:
    path: Path
    sentence: str
    n_frames: int
    fps: float


def scripted_policy(out: Path, target_id: int, start_s: float, end_s: float) -> Path:
    """A tiny policy (real weights and processor) that answers ``Target ID: target_id, Time range: ...``."""
    from stvg.training import template
    from stvg.training.policy import build_tiny_policy, chat_texts, save_policy

    model, processor = build_tiny_policy(TinyModelParams())
    tok = processor.tokenizer
    header = chat_texts(processor, [[{"role": "user", "content": "x"}]])[0]
    head = tok(header[header.rindex("<|im_start|>") :], add_special_tokens=False).input_ids
    answer = template.format_answer(target_id, start_s, end_s, think="the moment, then the object")
    tokens = tok(answer + "<|im_end|>", add_special_tokens=False).input_ids
    sequence = head + tokens  # each answer token is biased after the assistant header and its own prefix
    model.generation_config.sequence_bias = [
        [sequence[: len(head) + i + 1], 100.0] for i in range(len(tokens))
    ]
    save_policy(model, processor, out)
    return out


def build_champion(
    out: Path, params: Params, detector: Path, target_id: int, span: tuple[float, float]
) -> Path:
    """A grounding bundle over a scripted policy and the embedded default's prompting."""
    from stvg.grounding.bundle import write_bundle

    policy = scripted_policy(out.parent / f"{out.name}-policy", target_id, *span)
    write_bundle(out, policy, params, detector)
    return out


@pytest.fixture(scope="session")
def project_params(repo_root: Path) -> Params:
    return load_params(repo_root / "params.yaml")


@pytest.fixture(scope="session")
def champion_policy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The scripted policy's save_pretrained folder (what the train stage would leave)."""
    return scripted_policy(tmp_path_factory.mktemp("champion") / "policy", ANSWER_ID, *ANSWER_SPAN)


@pytest.fixture(scope="session")
def champion_bundle(champion_policy: Path, project_params: Params, trained_detector_path: Path) -> Path:
    """The grounding bundle a registration would log: the policy with the embedded default's prompting."""
    from stvg.grounding.bundle import write_bundle

    out = champion_policy.parent / "bundle"
    write_bundle(out, champion_policy, project_params, trained_detector_path)
    return out


@pytest.fixture(scope="session")
def benchmark_video(tmp_path_factory: pytest.TempPathFactory, project_params: Params) -> BenchmarkVideo:
    """The first video of the synthetic benchmark's val split (8 s, 320x240, 10 fps), as an mp4."""
    from stvg.data.synthetic import build_video, write_mp4

    p = project_params.synthetic
    video = build_video(p, "val", 0)
    path = tmp_path_factory.mktemp("video") / video.name
    write_mp4(path, video.frames, p.fps)
    return BenchmarkVideo(path=path, sentence=video.sentence, n_frames=len(video.frames), fps=p.fps)
