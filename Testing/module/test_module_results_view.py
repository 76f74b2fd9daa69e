"""What the user sees after a run: the results layout (scan, 3D surface, CSA plot beside the table),
the segments' 3D surfaces, and the bundled sample in the Sample Data module; on real MRML."""

import numpy as np
import SimpleITK as sitk
import slicer
import vtk
from SpineAILib import SpineAILogic
from SpineAILib.MeasurementTable import CHART_REFERENCE
from SpineAILib.ResultsView import (
    RESULTS_LAYOUT_ID,
    RESULTS_TABLE_LAYOUT_ID,
    resultsLayoutDescription,
    showResults,
)
from SpineAILib.SampleScan import NODE_NAME, THUMBNAIL, loadSample, sampleDataSourceArguments, sha256


def views_layout(mrml):
    """The layout node and logic the Slicer application creates (it owns them; keep them referenced)."""
    layout_logic = slicer.vtkMRMLLayoutLogic()
    layout_logic.SetMRMLScene(slicer.mrmlScene)
    mrml.layoutLogic = layout_logic
    return layout_logic.GetLayoutNode()


def test_the_results_layout_puts_the_table_beside_the_csa_plot(mrml, t2_volume, cached_engine):
    layout_node = views_layout(mrml)
    segmentation_node, table_node = SpineAILogic(engine=cached_engine).segment(t2_volume, device="cpu")
    chart = table_node.GetNodeReference(CHART_REFERENCE)
    assert showResults(slicer.mrmlScene, mrml.appLogic, table_node, chart)
    assert layout_node.GetViewArrangement() == RESULTS_LAYOUT_ID
    # The layout logic made the layout's views; the application logic put the results into them.
    (table_view,) = slicer.util.getNodesByClass("vtkMRMLTableViewNode")
    (plot_view,) = slicer.util.getNodesByClass("vtkMRMLPlotViewNode")
    assert table_view.GetTableNodeID() == table_node.GetID()
    assert plot_view.GetPlotChartNodeID() == chart.GetID()
    assert [node.GetLayoutName() for node in slicer.util.getNodesByClass("vtkMRMLViewNode")] == ["1"]
    assert "Yellow" in [node.GetLayoutName() for node in slicer.util.getNodesByClass("vtkMRMLSliceNode")]
    # Plot and table share the lower row, the sagittal slice and the 3D view the upper one.
    description = layout_node.GetLayoutDescription(RESULTS_LAYOUT_ID)
    lower = description[description.index('splitSize="400"') :]
    assert lower.index("vtkMRMLPlotViewNode") < lower.index("vtkMRMLTableViewNode")


def test_a_task_without_a_chart_shows_its_table_alone_below(mrml, t2_volume, cached_engine):
    layout_node = views_layout(mrml)
    _, table_node = SpineAILogic(engine=cached_engine).segment(t2_volume, device="cpu")
    assert showResults(slicer.mrmlScene, mrml.appLogic, table_node, None)
    assert layout_node.GetViewArrangement() == RESULTS_TABLE_LAYOUT_ID
    assert "vtkMRMLPlotViewNode" not in resultsLayoutDescription(withPlot=False)
    (table_view,) = slicer.util.getNodesByClass("vtkMRMLTableViewNode")
    assert table_view.GetTableNodeID() == table_node.GetID()


def test_without_views_nothing_changes(mrml, t2_volume, cached_engine):
    _, table_node = SpineAILogic(engine=cached_engine).segment(t2_volume, device="cpu")
    assert not showResults(slicer.mrmlScene, mrml.appLogic, table_node, None)


def voxel_box_ras(mask, volume):
    """(min, max) RAS corners of the voxel centres of ``mask`` a[k, j, i]."""
    ijk = np.argwhere(mask)[:, ::-1]
    matrix = vtk.vtkMatrix4x4()
    volume.GetIJKToRASMatrix(matrix)
    ras = (slicer.util.arrayFromVTKMatrix(matrix) @ np.c_[ijk, np.ones(len(ijk))].T)[:3].T
    return ras.min(axis=0), ras.max(axis=0)


def assert_surface_wraps(surface, mask, volume, margin_mm=1.5):
    low, high = voxel_box_ras(mask, volume)
    bounds = np.array(surface.GetBounds())
    assert np.all(np.abs(bounds[::2] - low) < margin_mm), (bounds, low)
    assert np.all(np.abs(bounds[1::2] - high) < margin_mm), (bounds, high)


def test_the_segments_get_3d_surfaces_that_follow_edits(t2_volume, cached_engine):
    logic = SpineAILogic(engine=cached_engine)
    segmentation_node, _ = logic.segment(t2_volume, device="cpu")
    segmentation = segmentation_node.GetSegmentation()
    surface_name = slicer.vtkSegmentationConverter.GetSegmentationClosedSurfaceRepresentationName()
    assert segmentation.ContainsRepresentation(surface_name)
    assert segmentation_node.GetDisplayNode().GetVisibility3D()
    surface = segmentation.GetSegment("spinal_cord").GetRepresentation(surface_name)
    assert surface.GetNumberOfPoints() > 100
    mask = slicer.util.arrayFromSegmentBinaryLabelmap(segmentation_node, "spinal_cord", t2_volume)
    assert_surface_wraps(surface, mask, t2_volume)
    # Erasing half of the cord drops the old surface; Update measurements builds it anew from the edit.
    mask[mask.shape[0] // 2 :] = 0
    slicer.util.updateSegmentBinaryLabelmapFromArray(mask, segmentation_node, "spinal_cord", t2_volume)
    logic.updateMeasurements(segmentation_node, t2_volume)
    edited = segmentation.GetSegment("spinal_cord").GetRepresentation(surface_name)
    assert_surface_wraps(edited, mask, t2_volume)


def test_the_bundled_sample_is_a_complete_sample_data_source(mrml):
    arguments = sampleDataSourceArguments()
    path = loadSample.__globals__["samplePath"]()
    assert arguments["category"] == "SpineAI" and arguments["nodeNames"] == NODE_NAME
    assert arguments["uris"] == path.as_uri() and arguments["fileNames"] == path.name
    assert arguments["checksums"] == "SHA256:" + sha256(path)
    assert arguments["checksums"] == "SHA256:15cde5cdc5e56ad4f7d5fef698b317864c9bd68c0f72d2b3022c9fae6d11d977"
    assert arguments["thumbnailFileName"] == str(THUMBNAIL) and THUMBNAIL.read_bytes()[:4] == b"\x89PNG"
    # The button's downloader loads the bundled file: the node holds the scan's voxels.
    volume = arguments["customDownloader"](None)
    assert volume.GetName() == NODE_NAME and slicer.mrmlScene.IsNodePresent(volume)
    expected = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
    assert sorted(slicer.util.arrayFromVolume(volume).shape) == sorted(expected.shape)
    assert slicer.util.arrayFromVolume(volume).sum() == expected.sum()
