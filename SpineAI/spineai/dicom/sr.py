"""The cord cross-sectional area as a DICOM SR Imaging Measurement Report (TID 1500, Comprehensive 3D SR).

One measurement group (TID 1411) for the "Spinal cord" segment of the SEG, holding:

* the mean CSA over the cord: concept SCT 42798000 "Area", derivation SCT 373098007 "Mean", unit
  UCUM "mm2", the value of ``measure.cord.aggregate`` over the per-slice table, i.e. the mean of the
  per-slice MEAN(area) column over the slices that have one;
* with vertebral levels, one more such measurement per level whose finding site is the vertebra
  (SNOMED CT "C3 vertebra" ...), valued as the per-level table's MEAN(area).

The per-slice values stay in the CSV: an axial slice of the canonical volume is not a source image
of a sagittal acquisition, so it has no image an SR item could reference. The report is marked
COMPLETE, UNVERIFIED and PRELIMINARY: nobody has reviewed an automatic result yet.
"""

from __future__ import annotations

import math

import highdicom as hd
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from .. import __version__
from ..measure.cord import LEVEL, aggregate
from ..measure.levels import level_name
from .seg import MANUFACTURER, segment_coding
from .series import SourceSeries

SR_SERIES_NUMBER = 9002
CSA = codes.SCT.Area
MEAN = codes.SCT.Mean
SQUARE_MILLIMETRE = codes.UCUM.SquareMillimeter
CORD_SEGMENT = 1


def build_measurement_report(
    source: SourceSeries, segmentation: hd.seg.Segmentation, tables: dict, sidecar: dict
) -> hd.sr.Comprehensive3DSR:
    """The SR of ``tables`` (``measure.morphometry_tables``), referencing segment 1 of ``segmentation``."""
    report = hd.sr.MeasurementReport(
        observation_context=observation_context(sidecar),
        procedure_reported=codes.cid100.MRIUnspecifiedBodyRegion,
        imaging_measurements=[cord_measurement_group(segmentation, tables, sidecar)],
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
        series_description="SpineAI cord morphometry",
    )


def cord_measurement_group(
    segmentation: hd.seg.Segmentation, tables: dict, sidecar: dict
) -> hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations:
    coding = segment_coding("cord")[CORD_SEGMENT]
    return hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier=coding.label),
        referenced_segment=referenced_cord_segment(segmentation),
        finding_type=coding.property_type,
        algorithm_id=hd.sr.AlgorithmIdentification(name="SpineAI", version=__version__, parameters=[sidecar["model"]]),
        measurements=cord_csa_measurements(tables),
    )


def referenced_cord_segment(segmentation: hd.seg.Segmentation) -> hd.sr.ReferencedSegment:
    """The whole cord segment with its source series (``ReferencedSegment.from_segmentation`` of highdicom
    0.28 fails on its own single-segment SEGs, whose segment identification is in the shared groups)."""
    source_series = segmentation.ReferencedSeriesSequence[0].SeriesInstanceUID
    return hd.sr.ReferencedSegment(
        sop_class_uid=segmentation.SOPClassUID,
        sop_instance_uid=segmentation.SOPInstanceUID,
        segment_number=CORD_SEGMENT,
        source_series=hd.sr.SourceSeriesForSegmentation(source_series),
    )


def cord_csa_measurements(tables: dict) -> list[hd.sr.Measurement]:
    """Mean CSA over the cord, then per vertebral level; values without a number (no valid slice) are left out."""
    rows = tables["per_slice"]
    measurements = [mean_csa(aggregate(rows)["MEAN(area)"])] if rows else []
    for row in tables.get("per_level", []):
        vertebra = getattr(codes.SCT, f"{level_name(int(row[LEVEL]))}Vertebra", None)  # no code for S1
        if vertebra is not None:
            measurements.append(mean_csa(row["MEAN(area)"], [hd.sr.FindingSite(vertebra)]))
    return [m for m in measurements if m is not None]


def mean_csa(value: float, finding_sites=None) -> hd.sr.Measurement | None:
    if not math.isfinite(value):
        return None
    return hd.sr.Measurement(
        name=CSA, value=value, unit=SQUARE_MILLIMETRE, derivation=MEAN, finding_sites=finding_sites
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
