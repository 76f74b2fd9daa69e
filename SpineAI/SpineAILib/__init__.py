"""The SpineAI Slicer module's code, in small files (the module file SpineAI.py only wires the GUI).

- Compatibility: the Slicer versions SpineAI supports (imported first, on any Slicer's Python)
- VolumeConversion: MRML volume nodes <-> SimpleITK images with exact geometry; input checks
- Terminology: segment names -> standard codes and colours (the engine's spineai/terminology.csv)
- SegmentationNodes: building result segmentation nodes; edit detection
- MeasurementTable, Measurements: measurement tables with units, the CSA chart, CSV export
- LevelPoints: the stenosis task's disc levels as a markups point list <-> the engine's LevelPoints
- Logic: SpineAILogic, the GUI-free API (segment, updateMeasurements, exportCSV)
- SegmentationJob, EngineProcess, EngineWorker: background runs with progress and Cancel
- Dependencies: installing the engine's packages inside Slicer, in the background
- Teaching, FineTuneWorker: Teach SpineAI: corrections into a site folder, fine-tuning in the background,
  the site model chosen per task
- SceneTransaction, Signal: all-or-nothing scene changes; logic -> panel notifications

Nothing here imports Qt, so all of it runs (and is tested) on real MRML outside the Slicer application.
Slicers older than 5.10 run Python 3.9, for which the rest is not written: there only
``SpineAILib.Compatibility`` is imported (by SpineAI.py, to say what is needed).
"""

import sys

if sys.version_info >= (3, 10):  # noqa: UP036 (Python 3.9 is what old Slicers run)
    from .Logic import SpineAILogic
    from .SegmentationJob import JobState, SegmentationJob

    __all__ = ["JobState", "SegmentationJob", "SpineAILogic"]
