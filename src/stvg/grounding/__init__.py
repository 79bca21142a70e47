"""Grounding a raw video with a trained model: video + query -> target ID, time span and box tube.

    bundle.py    the self-contained model folder (policy, prompting configuration, weights by hash)
    inputs.py    what a caller may send as a video (path, file URI, base64 bytes) and the checks on it
    prompter.py  the one adapter over the prompting engine and the mask database
    grounder.py  raw video -> prompted video -> the policy's answer -> the answered ID's tube
    annotate.py  the raw video with the answered tube and time span drawn (mp4)
    batch.py     many {video, query} lines, each failure isolated, resumable

The library part of ``stvg ground`` and of the served model; the registry glue (resolving
``models:/stvg-r1@champion``, the MLflow pyfunc, the reload on alias moves) lives in ``flows/``.
"""
