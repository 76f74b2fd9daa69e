"""Measurements in a table node (with column units and flags), a plot along the cord, and CSV export.

The table holds the engine's rows unchanged (cord: one row per axial slice; lesion: one row per
lesion and a "total" row; stenosis: one row per disc level), in the engine's column order (yes/no
columns as the text True/False, as in the engine's CSV); each column's unit is set on the table
(shown by the Tables module, kept in the scene). The measurement's flags and notes (e.g.
``lesion_found``) are kept as JSON in the table's ``SpineAI.MeasurementFlags`` attribute, so they
are saved with the scene. The plot series reads the table's columns, so it follows every update.
"""

from __future__ import annotations

import json
import math
import numbers
from pathlib import Path

import numpy as np
import slicer
import vtk

from spineai.io import OutputSet

CHART_REFERENCE = "SpineAI.Chart"
FLAGS_ATTRIBUTE = "SpineAI.MeasurementFlags"


def fillTable(tableNode, rows: list[dict], columns: list[str], units: dict[str, str]) -> None:
    """Replace the table's content with ``rows`` (dicts keyed by ``columns``)."""
    table = vtk.vtkTable()
    for column in columns:
        table.AddColumn(_vtkColumn(column, [row.get(column) for row in rows]))
    wasModifying = tableNode.StartModify()
    tableNode.SetAndObserveTable(table)
    for column in columns:
        tableNode.SetColumnUnitLabel(column, units.get(column, ""))
    tableNode.SetUseColumnTitleAsColumnHeader(True)
    tableNode.EndModify(wasModifying)


def setFlags(tableNode, flags: dict) -> None:
    tableNode.SetAttribute(FLAGS_ATTRIBUTE, json.dumps(flags, default=str))


def tableFlags(tableNode) -> dict:
    """The flags of the last measurement written into the table ({} if none)."""
    return json.loads(tableNode.GetAttribute(FLAGS_ATTRIBUTE) or "{}")


def tableRows(tableNode) -> list[dict]:
    """The table as a list of row dicts (ints, floats with NaN for missing, strings)."""
    table = tableNode.GetTable()
    columns = [table.GetColumn(index) for index in range(table.GetNumberOfColumns())]
    rows = []
    for rowIndex in range(table.GetNumberOfRows()):
        rows.append({column.GetName(): _pythonValue(column, rowIndex) for column in columns})
    return rows


def tableColumns(tableNode) -> list[str]:
    table = tableNode.GetTable()
    return [table.GetColumnName(index) for index in range(table.GetNumberOfColumns())]


def exportCSV(tableNode, path) -> Path:
    """Write the table as CSV (written all-or-nothing by the engine's writer, same format as `spineai measure`)."""
    path = Path(path)
    if path.suffix.lower() != ".csv":
        path = path.with_name(path.name + ".csv")
    with OutputSet(path.parent) as out:
        return out.write_csv(tableRows(tableNode), path.name, tableColumns(tableNode))


def createChart(tableNode, name: str, spec, color) -> object:
    """A chart of column ``spec.y`` against ``spec.x`` of the table (``Measurements.ChartSpec``), referenced from it."""
    scene = slicer.mrmlScene
    series = scene.AddNewNodeByClass("vtkMRMLPlotSeriesNode", f"{name} series")
    series.SetAndObserveTableNodeID(tableNode.GetID())
    series.SetXColumnName(spec.x)
    series.SetYColumnName(spec.y)
    series.SetPlotType(slicer.vtkMRMLPlotSeriesNode.PlotTypeScatter)
    series.SetMarkerStyle(slicer.vtkMRMLPlotSeriesNode.MarkerStyleCircle)
    series.SetColor(*color)
    chart = scene.AddNewNodeByClass("vtkMRMLPlotChartNode", name)
    chart.AddAndObservePlotSeriesNodeID(series.GetID())
    chart.SetTitle(spec.title)
    chart.SetXAxisTitle(_axisTitle(tableNode, spec.x))
    chart.SetYAxisTitle(_axisTitle(tableNode, spec.y))
    chart.SetLegendVisibility(False)
    tableNode.SetNodeReferenceID(CHART_REFERENCE, chart.GetID())
    return chart


def _axisTitle(tableNode, column: str) -> str:
    unit = tableNode.GetColumnUnitLabel(column)
    return f"{column} [{unit}]" if unit else column


def _vtkColumn(name: str, values: list):
    present = [value for value in values if not _isMissing(value)]
    if present and all(isinstance(value, (bool, np.bool_)) for value in present):
        # True/False as the engine's CSV writes them (a number column would show 1.0/0.0)
        array = vtk.vtkStringArray()
        convert = lambda value: "" if value is None else str(bool(value))  # noqa: E731
    elif (
        present
        and all(isinstance(value, numbers.Integral) and not isinstance(value, bool) for value in present)
        and len(present) == len(values)
    ):
        array = vtk.vtkIntArray()
        convert = int
    elif all(isinstance(value, numbers.Real) for value in present):
        array = vtk.vtkDoubleArray()
        convert = lambda value: math.nan if _isMissing(value) else float(value)  # noqa: E731
    else:
        array = vtk.vtkStringArray()
        convert = lambda value: "" if value is None else str(value)  # noqa: E731
    array.SetName(name)
    for value in values:
        array.InsertNextValue(convert(value))
    return array


def _isMissing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _pythonValue(column, rowIndex: int):
    if column.IsA("vtkStringArray"):
        return column.GetValue(rowIndex)
    if column.IsA("vtkDoubleArray") or column.IsA("vtkFloatArray"):
        return float(column.GetValue(rowIndex))
    return int(column.GetValue(rowIndex))
