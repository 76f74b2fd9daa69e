"""What the lesion and tumour tasks share: the cord network first, then the task's network, one
table of findings (one row per lesion or tumour and a total row) and cohort tables built from it."""

from __future__ import annotations

from .base import Table, Task, case_rows, run_facts


class FindingsTask(Task):
    """A task whose table has one row per finding and a last "total" row."""

    # (label, column) of the total row shown on the QC page, in reading order.
    qc_total_columns: tuple[tuple[str, str], ...] = ()

    @property
    def found_key(self) -> str:
        return f"{self.name}_found"

    def cord_found(self, labels, flags: dict) -> bool | None:
        # A tumour can be found where no cord is: the measurement's own cord flag says whether there is one.
        return bool(flags["cord_found"])

    def case_summary(self, case_id: str, sidecar: dict) -> dict:
        rows = case_rows(sidecar)
        return (
            {"case_id": case_id, "input": sidecar.get("input", ""), "cord_found": sidecar.get("cord_found", "")}
            | {self.found_key: sidecar.get(self.name, {}).get(self.found_key, "")}
            | {key: value for key, value in (rows[-1] if rows else {}).items() if key != "label"}
            | run_facts(sidecar)
        )

    def cohort_tables(self, cases: list[tuple[str, dict]]) -> list[Table]:
        """Every row of every case (``<task>_all.csv``) and each case's total row (``<task>_summary.csv``)."""
        from .base import RUN_COLUMNS

        columns = self.columns()
        all_rows = [{"case_id": case_id, **row} for case_id, sidecar in cases for row in case_rows(sidecar)]
        summaries = [self.case_summary(case_id, sidecar) for case_id, sidecar in cases]
        totals = [c for c in columns if c != "label"]
        summary_columns = ["case_id", "input", "cord_found", self.found_key, *totals, *RUN_COLUMNS]
        return [
            Table(f"{self.name}_all", all_rows, ["case_id", *columns], f"{self.name}_all"),
            Table(f"{self.name}_summary", summaries, summary_columns, "summary"),
        ]

    def qc_measurements(self, sidecar: dict, summary: dict) -> list[tuple[str, object]]:
        total = (case_rows(sidecar) or [{}])[-1]
        pairs = [(label, total.get(column, "")) for label, column in self.qc_total_columns]
        return pairs + [("Cord found", "yes" if sidecar.get("cord_found") else "no")]


def cord_then(network_name: str, canonical, device, progress, should_cancel, cord_share: float, model_dir=None):
    """The cord mask (its network gets ``cord_share`` of the progress), then the probability of the
    task's own network (``model_dir``: a site model of it) on the same scan: (cord Segmented, task
    network, probability array)."""
    from ..inference import network_for
    from ..orientation import canonical_array
    from .cord import segment_cord

    cord = segment_cord(canonical, device, stage(progress, 0.0, cord_share), should_cancel)
    network = network_for(network_name, device, model_dir)
    probability = network.probability(canonical, stage(progress, cord_share, 1.0), should_cancel)
    return cord, network, canonical_array(probability)


def stage(progress, start: float, end: float):
    """Progress of one stage of a task mapped onto its share [start, end] of the whole."""
    return None if progress is None else (lambda fraction: progress(start + (end - start) * fraction))
