"""The SpineAI Slicer module's code, in small files (the module file SpineAI.py only wires the GUI).

- VolumeConversion: MRML volume nodes <-> SimpleITK images with exact geometry; input checks
- Terminology: segment names -> standard codes and colours (the engine's spineai/terminology.csv)
- SegmentationNodes: building result segmentation nodes; edit detection
- MeasurementTable, Measurements: measurement tables with units, the CSA chart, CSV export
- LevelPoints: the stenosis task's disc levels as a markups point list <-> the engine's LevelPoints
- Logic: SpineAILogic, the GUI-free API (segment, updateMeasurements, exportCSV)
- SegmentationJob, EngineProcess, EngineWorker: background runs with progress and Cancel
- Dependencies: installing torch and the engine's packages inside Slicer
- SceneTransaction, Signal: all-or-nothing scene changes; logic -> panel notifications

Nothing here imports Qt, so all of it runs (and is tested) on real MRML outside the Slicer application.
"""

from .Logic import SpineAILogic
from .SegmentationJob import JobState, SegmentationJob

__all__ = ["JobState", "SegmentationJob", "SpineAILogic"]
