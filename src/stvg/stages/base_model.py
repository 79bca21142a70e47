"""Base-model stage: the policy GRPO starts from, built or recorded once and cached by DVC.

    stvg base_model --params params.yaml --out artifacts/base_model

``train.model: tiny`` builds the embedded default (a tiny random Qwen2.5-VL with an offline tokenizer,
deterministic by ``train.tiny.seed``), teaches it the answer format (``training.warmup``, when
``train.tiny.format_steps`` > 0) and saves weights, processor and prompt template. Any other value
is a local checkpoint folder or a Hugging Face id: it is validated where possible (a local folder must
hold config.json) and recorded in ``source.json``, so the weights are not copied. Offline
(``HF_HUB_OFFLINE=1``, the default) a hub id only works if it is already in the HF cache.
Writes ``summary.json`` with the weights hash (tiny) and parameter count.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from stvg.config import load_params
from stvg.io import atomic_dir, write_json_atomic
from stvg.runinfo import write_run_info
from stvg.training import template
from stvg.training.policy import SOURCE_FILE, build_tiny_policy, save_policy, weights_hash

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="stvg base_model", description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--out", required=True, help="output folder (e.g. artifacts/base_model)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    p = load_params(args.params).train
    t0 = time.perf_counter()
    out = Path(args.out)
    with atomic_dir(out) as tmp:
        if p.model == "tiny":
            model, processor = build_tiny_policy(p.tiny)
            warmup: dict[str, float] = {}
            if p.tiny.format_steps:
                from stvg.training.warmup import warm_up_format

                warmup = warm_up_format(
                    model,
                    processor,
                    steps=p.tiny.format_steps,
                    lr=p.tiny.format_lr,
                    batch=p.tiny.format_batch,
                    seed=p.tiny.seed,
                )
            save_policy(model, processor, tmp)
            summary = {
                **warmup,
                "model": "tiny",
                "weights_sha256": weights_hash(model),
                "n_params": int(sum(t.numel() for t in model.parameters())),
                "vocab_size": len(processor.tokenizer),
            }
        else:
            local = Path(p.model).expanduser()
            if local.exists() and not (local / "config.json").is_file():
                print(
                    f"stvg base_model: {local} has no config.json; point train.model at a save_pretrained folder"
                )
                return 1
            source = str(local.resolve()) if local.exists() else p.model
            write_json_atomic(tmp / SOURCE_FILE, {"model": source, "local": local.exists()})
            template.save_template(tmp)
            summary = {"model": source, "local": local.exists()}
        summary["template_version"] = template.TEMPLATE_VERSION
        write_json_atomic(tmp / "summary.json", summary)
    write_run_info(out, "base_model", {"total_s": time.perf_counter() - t0})
    print(f"base_model: {summary}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
