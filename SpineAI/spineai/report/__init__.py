"""Reports for people: the cohort QC page (``qc``) and its dependency-free PNG writer (``png``)."""
