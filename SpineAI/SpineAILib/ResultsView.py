"""Showing a result: a view layout with the scan, the 3D surface of the segments, the plot and the table.

The layout "SpineAI results" (registered once in the scene's layout node) has the sagittal slice
view and the 3D view on top, and below them the plot view (the CSA along the cord) beside the table
view (the measurement table). Showing a result selects that layout and makes the table and chart
the active ones, which Slicer's application logic then puts into the table and plot views. A task
without a chart (one row per lesion, tumour or level) shows its table alone in the lower row.

Everything here is MRML (layout node, selection node, application logic): the layout manager of the
Slicer application follows the layout node's view arrangement, so no Qt call is needed.
"""

from __future__ import annotations

# Slicer's own layouts use ids up to a few hundred (vtkMRMLLayoutNode::SlicerLayout...); extensions pick
# a large number of their own.
RESULTS_LAYOUT_ID = 4601  # with the plot view
RESULTS_TABLE_LAYOUT_ID = 4602  # without: the table takes the whole lower row

_VIEW = '<item{size}><view class="{cls}" singletontag="{tag}">{properties}</view></item>'
_PROPERTY = '<property name="{name}" action="default">{value}</property>'


def _view(cls: str, tag: str, size: int | None = None, **properties) -> str:
    text = "".join(_PROPERTY.format(name=name, value=value) for name, value in properties.items())
    return _VIEW.format(cls=cls, tag=tag, properties=text, size=f' splitSize="{size}"' if size else "")


def resultsLayoutDescription(withPlot: bool = True) -> str:
    """The layout XML: sagittal slice | 3D view over plot | table (or the table alone)."""
    sagittal = _view("vtkMRMLSliceNode", "Yellow", orientation="Sagittal", viewlabel="Y", viewcolor="#EDD54C")
    threeD = _view("vtkMRMLViewNode", "1", viewlabel="1")
    plot = _view("vtkMRMLPlotViewNode", "PlotView1", viewlabel="P") if withPlot else ""
    table = _view("vtkMRMLTableViewNode", "TableView1", viewlabel="T")
    top = f'<item splitSize="600"><layout type="horizontal" split="true">{sagittal}{threeD}</layout></item>'
    bottom = f'<item splitSize="400"><layout type="horizontal" split="true">{plot}{table}</layout></item>'
    return f'<layout type="vertical" split="true">{top}{bottom}</layout>'


def layoutNode(scene):
    """The scene's layout node (a singleton the Slicer application creates), or None."""
    return scene.GetFirstNodeByClass("vtkMRMLLayoutNode")


def registerResultsLayout(layout, withPlot: bool = True) -> int:
    """Add the results layout (with or without the plot view) to ``layout`` (a vtkMRMLLayoutNode) if it
    is not there yet; return its id."""
    layoutId = RESULTS_LAYOUT_ID if withPlot else RESULTS_TABLE_LAYOUT_ID
    if not layout.IsLayoutDescription(layoutId):
        layout.AddLayoutDescription(layoutId, resultsLayoutDescription(withPlot))
    return layoutId


def showResults(scene, applicationLogic, tableNode, chartNode=None) -> bool:
    """Switch to the results layout with ``tableNode`` in its table view and ``chartNode`` (if any) in
    its plot view. Returns False (changing nothing) when the scene has no layout node (no views)."""
    layout = layoutNode(scene)
    if layout is None:
        return False
    layout.SetViewArrangement(registerResultsLayout(layout, withPlot=chartNode is not None))
    selection = applicationLogic.GetSelectionNode()
    if tableNode is not None:
        selection.SetActiveTableID(tableNode.GetID())
        applicationLogic.PropagateTableSelection()
    if chartNode is not None:
        selection.SetActivePlotChartID(chartNode.GetID())
        applicationLogic.PropagatePlotChartSelection()
    return True
