"""SpineAI engine: deep-learning analysis of spine MRI, with no dependency on 3D Slicer."""

__version__ = "0.1.0"
