"""Cohorts: find the cases of a folder, BIDS dataset or CSV list (``discover``), run a task on them
with Dask, resumably (``run``), aggregate the per-case tables (``aggregate``); ``command`` adds
``spineai batch`` and ``spineai qc`` to the CLI. Needs the ``cohort`` extra (dask[distributed])."""
