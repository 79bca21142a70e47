"""Independent re-implementations of the official metrics, rewards and rules, for the tests only.

Each module restates one official source's behaviour in plain Python loops (no numpy, nothing from
``stvg``), from reading that source: the HC-STVG challenge script, TubeDETR's evaluators, the
STVG-R1 training, evaluation and label scripts, LLaVA-ST's ST-Align evaluation and
``qwen_vl_utils``' video sampling. ``tests/protocols`` runs them against the project on random and
edge cases; where an official script would raise (a division by zero, a missing frame) the
reference says so in its docstring and the tests keep such cases out of its inputs.
"""
