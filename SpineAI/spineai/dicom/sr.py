"""A task's measurements as a DICOM SR Imaging Measurement Report (TID 1500, Comprehensive 3D SR).

What goes into the report is the task's mapping in ``report_content``: one measurement group
(TID 1411) per reported table row, each referencing one segment of the SEG written in the same run
(with its source series), its finding type the segment's type, its finding sites the vertebral or
disc levels of the row. In a group:

* each mapped column with a number is a NUM item (TID 300): concept, value as in the CSV, UCUM unit,
  derivation where the mapping gives one;
* each mapped grade is a CODE item (qualitative evaluation) with the rule text that gave it as a TEXT
  child (HAS PROPERTIES), e.g. the Schizas grade and the thresholds it was read from;
* a level that could not be assessed has a TEXT item saying why, and no measurement.

Codes that the standard lacks come from SpineAI's private scheme ``99SPINEAI``, declared in the
report's CodingSchemeIdentificationSequence. Per-slice values stay in the CSV: an axial slice of
the canonical volume is not a source image of a sagittal acquisition, so it has no image an SR item
could reference. The report is marked COMPLETE, UNVERIFIED and PRELIMINARY: nobody has reviewed an
automatic result yet.
"""

from __future__ import annotations

import highdicom as hd
from highdicom.coding_schemes import CodingSchemeIdentificationItem
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from .. import __version__
from . import codes as c
from .report_content import Group, ReportContent, finite, report_content
from .seg import MANUFACTURER, segment_coding
from .series import SourceSeries

SR_SERIES_NUMBER = 9002


def build_measurement_report(
    source: SourceSeries, segmentation: hd.seg.Segmentation, task: str, tables: dict, sidecar: dict
) -> hd.sr.Comprehensive3DSR:
    """The SR of ``task``'s ``tables`` (rows by table kind, as ``Task.measure`` returns them), referencing
    ``segmentation``'s segments."""
    content = report_content(task)
    groups = [measurement_group(segmentation, task, content, group, sidecar) for group in content.groups(tables)]
    report = hd.sr.MeasurementReport(
        observation_context=observation_context(sidecar),
        procedure_reported=codes.cid100.MRIUnspecifiedBodyRegion,
        imaging_measurements=groups,
        title=codes.cid7021.ImagingMeasurementReport,
    )
    return hd.sr.Comprehensive3DSR(
        evidence=[*source.datasets, segmentation],
        content=report,
        series_instance_uid=generate_uid(),
        series_number=SR_SERIES_NUMBER,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        is_complete=True,
        is_final=False,
        is_verified=False,
        series_description=content.title,
        coding_schemes=[private_scheme()] if uses_private_codes(report) else None,
    )


def measurement_group(
    segmentation: hd.seg.Segmentation, task: str, content: ReportContent, group: Group, sidecar: dict
) -> hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations:
    (coding,) = [coding for coding in segment_coding(task) if coding.label == content.segment]
    evaluations = [evaluation for grade in content.grades if (evaluation := qualitative(grade, group.row))]
    built = hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier=group.tracking),
        referenced_segment=referenced_segment(segmentation, coding.number),
        finding_type=coding.property_type,
        finding_sites=[hd.sr.FindingSite(site) for site in group.finding_sites] or None,
        algorithm_id=hd.sr.AlgorithmIdentification(name="SpineAI", version=__version__, parameters=[sidecar["model"]]),
        measurements=[measurement for number in content.numbers if (measurement := numeric(number, group.row))],
        qualitative_evaluations=evaluations or None,
    )
    notes = [note_item(note.concept, group.row[note.column]) for note in content.notes if group.row.get(note.column)]
    if notes:
        built[0].ContentSequence.extend(notes)
    return built


def referenced_segment(segmentation: hd.seg.Segmentation, number: int) -> hd.sr.ReferencedSegment:
    """Segment ``number`` with its source series (``ReferencedSegment.from_segmentation`` of highdicom
    0.28 fails on its own single-segment SEGs, whose segment identification is in the shared groups)."""
    source_series = segmentation.ReferencedSeriesSequence[0].SeriesInstanceUID
    return hd.sr.ReferencedSegment(
        sop_class_uid=segmentation.SOPClassUID,
        sop_instance_uid=segmentation.SOPInstanceUID,
        segment_number=number,
        source_series=hd.sr.SourceSeriesForSegmentation(source_series),
    )


def numeric(number, row: dict) -> hd.sr.Measurement | None:
    """The NUM item of a column; None when the row has no number there (no valid slice, not assessable)."""
    value = finite(row.get(number.column))
    if value is None:
        return None
    return hd.sr.Measurement(name=number.concept, value=value, unit=number.unit, derivation=number.derivation)


def qualitative(grade, row: dict) -> hd.sr.QualitativeEvaluation | None:
    """The CODE item of a graded column, with its rule as a TEXT child; None when the row has no grade."""
    value = str(row.get(grade.column) or "")
    if not value:
        return None
    if value not in grade.values:  # a new grade the mapping does not know: a bug to fix, not to hide
        raise ValueError(f"no code for {grade.column} = {value!r}")
    evaluation = hd.sr.QualitativeEvaluation(name=grade.concept, value=grade.values[value])
    rule = str(row.get(grade.rule_column) or "") if grade.rule_column else ""
    if rule:
        evaluation[0].ContentSequence = hd.sr.ContentSequence(
            [note_item(c.RULE, rule, hd.sr.RelationshipTypeValues.HAS_PROPERTIES)]
        )
    return evaluation


def note_item(concept, text: str, relationship=hd.sr.RelationshipTypeValues.CONTAINS) -> hd.sr.TextContentItem:
    return hd.sr.TextContentItem(name=concept, value=str(text), relationship_type=relationship)


def uses_private_codes(items) -> bool:
    """Whether any code in the content tree ``items`` (a sequence of datasets) is from the private scheme."""
    for item in items:
        for element in item:
            if element.VR == "SQ" and uses_private_codes(element.value):
                return True
        if item.get("CodingSchemeDesignator") == c.PRIVATE_SCHEME:
            return True
    return False


def private_scheme() -> CodingSchemeIdentificationItem:
    """The declaration of SpineAI's private coding scheme (PS3.3 C.12.1.1.2)."""
    return CodingSchemeIdentificationItem(
        designator=c.PRIVATE_SCHEME,
        name=c.PRIVATE_SCHEME_NAME,
        version=c.PRIVATE_SCHEME_VERSION,
        responsible_organization=c.PRIVATE_SCHEME_ORGANIZATION,
    )


def observation_context(sidecar: dict) -> hd.sr.ObservationContext:
    """The observer is the SpineAI device; its UID is the same for the same engine version and model."""
    device = hd.sr.DeviceObserverIdentifyingAttributes(
        uid=generate_uid(entropy_srcs=["SpineAI", __version__, sidecar["model_sha256"]]),
        name="SpineAI",
        manufacturer_name=MANUFACTURER,
        model_name=sidecar["model"],
    )
    return hd.sr.ObservationContext(
        observer_device_context=hd.sr.ObserverContext(
            observer_type=codes.DCM.Device, observer_identifying_attributes=device
        )
    )
