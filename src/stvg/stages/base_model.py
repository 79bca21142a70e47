"""Base-model stage: the policy GRPO starts from, built or recorded once and cached by DVC.

    stvg base_model --params params.yaml --out artifacts/base_model

``train.model: tiny`` builds the embedded default (a tiny random Qwen2.5-VL with an offline tokenizer,
deterministic by ``train.tiny.seed``), teaches it the answer format (``training.warmup``, when
``train.tiny.format_steps`` > 0) and saves weights, processor and prompt template. Any other value
is a local checkpoint folder or a Hugging Face id: it is validated (a local folder must hold
config.json; offline, ``HF_HUB_OFFLINE=1`` by default, a hub id must already be in the HF cache) and
recorded in ``source.json``, so the weights are not copied; the stage fails naming the fix otherwise.
Writes ``summary.json`` with the weights hash (tiny) and parameter count.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path

from stvg.config import load_params
from stvg.io import atomic_dir, write_json_atomic
from stvg.runinfo import write_run_info
from stvg.training import template
from stvg.training.policy import SOURCE_FILE, build_tiny_policy, save_policy, weights_hash

log = logging.getLogger(__name__)


def hub_offline() -> bool:
    """Whether Hugging Face downloads are off (``HF_HUB_OFFLINE``, which ``stvg.env`` sets by default)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def in_hub_cache(repo_id: str) -> bool:
    """Whether ``repo_id`` is a model id whose config.json is already in the local Hugging Face cache."""
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(repo_id, "config.json")
    except ValueError:  # not a valid repo id (HFValidationError): e.g. a path that does not exist
        return False
    return isinstance(found, str)


def reference_problem(model: str) -> str:
    """Why ``train.model`` (a checkpoint folder or hub id) cannot be loaded later, or "" when it can.

    Checked here, the pipeline's first stage after the download, so a missing checkpoint stops the run
    before hours of prompting rather than when training loads it. Offline, a hub id counts only when
    it is in the cache; online it is left to ``from_pretrained`` (nothing is fetched here).
    """
    local = Path(model).expanduser()
    if local.exists():
        if not (local / "config.json").is_file():
            return f"{local} has no config.json; point train.model at a save_pretrained folder"
        return ""
    if hub_offline() and not in_hub_cache(model):
        return (
            f"train.model {model!r} is neither a folder (none at {local.resolve()}) nor a model id in the "
            "Hugging Face cache, and downloads are off (HF_HUB_OFFLINE=1). Fetch it first "
            f"(hf download <id> --local-dir {model}) or point train.model at the folder that holds it; "
            "HF_HUB_OFFLINE=0 lets training download a hub id"
        )
    return ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="stvg base_model", description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--out", required=True, help="output folder (e.g. artifacts/base_model)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    p = load_params(args.params).train
    t0 = time.perf_counter()
    out = Path(args.out)
    problem = reference_problem(p.model) if p.model != "tiny" else ""
    if problem:  # before the output folder exists: a failed run leaves nothing behind
        print(f"stvg base_model: {problem}")
        return 1
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
            source = str(local.resolve()) if local.exists() else p.model
            write_json_atomic(tmp / SOURCE_FILE, {"model": source, "local": local.exists()})
            # the template training will read (template.load_template of the source): official unless
            # the checkpoint ships its own, so the gate checks the prompt the policy is trained with
            template.save_template(tmp, template.load_template(source))
            summary = {"model": source, "local": local.exists()}
        summary["template_version"] = template.TEMPLATE_VERSION
        write_json_atomic(tmp / "summary.json", summary)
    write_run_info(out, "base_model", {"total_s": time.perf_counter() - t0})
    print(f"base_model: {summary}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
