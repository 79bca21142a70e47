"""Visual prompting (paper section 3.1): detect, segment and track instances, repair their IDs, burn red
numeric IDs into the frames, and keep a mask database per video.

``engine.prompt_video`` is the entry point for one video; ``backends`` holds the tracking backends
(``sam2``, the paper's path, and the ``synthetic_cpu`` stand-in); ``identity`` the pure ID logic they
share; ``maskdb`` the database the prompt stage writes and every later stage reads.
"""
