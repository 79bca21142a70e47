"""Data sets in one schema: adapters for each release format, the synthetic benchmark, and fetching.

``stvg.data.registry.load_samples(FORMAT, annotation)`` is the entry point; it returns ``Sample``
records (stvg.records) with 0-based inclusive frame spans, xyxy pixel boxes and times in seconds.
"""
