"""The tiny Qwen2.5-VL policy: offline build, save/load round trip, video timing, batched greedy answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from stvg.config import TinyModelParams
from stvg.training import template
from stvg.training.inference import generate_answers
from stvg.training.policy import (
    build_tiny_policy,
    chat_texts,
    encode_video_prompts,
    load_policy,
    save_policy,
    weights_hash,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model, processor = build_tiny_policy(TinyModelParams())
    out = tmp_path_factory.mktemp("tiny")
    save_policy(model, processor, out)
    return out


def _frames(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (n, 56, 84, 3), dtype=np.uint8)


def test_second_per_grid_ts_follows_the_recorded_sampling(tiny_dir: Path) -> None:
    _, processor = load_policy(tiny_dir)
    texts = chat_texts(processor, [template.build_messages("the red square moves")] * 2)
    # 25 fps video of 200 frames (8 s) sampled at 2 fps -> 16 frames, every 12.5 native frames.
    idx_2fps = [round(i * 12.5) for i in range(16)]
    # 10 fps video of 40 frames (4 s) sampled at 1 fps -> 4 frames.
    idx_1fps = [0, 10, 20, 30]
    enc = encode_video_prompts(
        processor,
        texts,
        [_frames(16), _frames(4)],
        [
            {"native_fps": 25.0, "n_frames": 200, "frame_indices": idx_2fps},
            {"native_fps": 10.0, "n_frames": 40, "frame_indices": idx_1fps},
        ],
    )
    # Two frames per temporal grid: 1.0 s at 2 fps, 2.0 s at 1 fps (fps alone would assume 24 fps).
    assert enc["second_per_grid_ts"].tolist() == pytest.approx([1.0, 2.0])
    assert enc["video_grid_thw"][:, 0].tolist() == [8, 2]
    n_video_tokens = int((enc["input_ids"] == processor.video_token_id).sum())
    assert n_video_tokens == int(enc["video_grid_thw"].prod(-1).sum()) // 4
    assert enc["mm_token_type_ids"].max() == 2


def test_sampling_mismatch_is_a_clear_error(tiny_dir: Path) -> None:
    _, processor = load_policy(tiny_dir)
    texts = chat_texts(processor, [template.build_messages("x")])
    with pytest.raises(ValueError, match="sampling lists"):
        encode_video_prompts(
            processor, texts, [_frames(4)], [{"native_fps": 10, "n_frames": 40, "frame_indices": [0, 10]}]
        )


def test_build_is_deterministic_and_round_trips(tiny_dir: Path) -> None:
    a, _ = build_tiny_policy(TinyModelParams(seed=0))
    c, _ = build_tiny_policy(TinyModelParams(seed=1))
    loaded, processor = load_policy(tiny_dir)
    assert weights_hash(a) == weights_hash(loaded)
    assert weights_hash(a) != weights_hash(c)
    assert (tiny_dir / template.TEMPLATE_FILE).is_file()
    assert template.load_template(tiny_dir) == template.QUESTION_TEMPLATE
    assert processor.tokenizer.convert_tokens_to_ids("<|video_pad|>") == loaded.config.video_token_id


def test_generate_answers_is_batched_greedy_and_order_preserving(tiny_dir: Path) -> None:
    sampling = {"native_fps": 10.0, "n_frames": 40, "frame_indices": [0, 10, 20, 30]}
    items = [
        {"video": _frames(4, seed=i), "sampling": sampling, "query": f"the object number {i}"}
        for i in range(3)
    ]
    batched = generate_answers(tiny_dir, items, batch_size=2, max_new_tokens=6, progress=False)
    single = [
        generate_answers(tiny_dir, [it], batch_size=1, max_new_tokens=6, progress=False)[0] for it in items
    ]
    assert len(batched) == 3 and all(isinstance(t, str) for t in batched)
    assert batched == single  # greedy: padding and batching do not change the answers
    again = generate_answers(
        tiny_dir, items, batch_size=3, max_new_tokens=6, do_sample=False, seed=123, progress=False
    )
    assert again == batched
