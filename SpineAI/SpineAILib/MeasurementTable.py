"""Measurements in a table node (with column units), a plot along the cord, and CSV export.

The table holds the engine's rows unchanged, one row per axial slice, in the engine's column
order; each column's unit is set on the table (shown by the Tables module, kept in the scene).
The plot series reads the table's columns, so it follows every update of the table.
"""

from __future__ import annotations

import math
import numbers
from pathlib import Path

import slicer
import vtk

from spineai.io import OutputSet

CHART_REFERENCE = "SpineAI.Chart"


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


def createChart(tableNode, name: str, xColumn: str, yColumn: str, title: str, color) -> object:
    """A chart of ``yColumn`` against ``xColumn`` of the table; referenced from the table."""
    scene = slicer.mrmlScene
    series = scene.AddNewNodeByClass("vtkMRMLPlotSeriesNode", f"{name} series")
    series.SetAndObserveTableNodeID(tableNode.GetID())
    series.SetXColumnName(xColumn)
    series.SetYColumnName(yColumn)
    series.SetPlotType(slicer.vtkMRMLPlotSeriesNode.PlotTypeScatter)
    series.SetMarkerStyle(slicer.vtkMRMLPlotSeriesNode.MarkerStyleCircle)
    series.SetColor(*color)
    chart = scene.AddNewNodeByClass("vtkMRMLPlotChartNode", name)
    chart.AddAndObservePlotSeriesNodeID(series.GetID())
    chart.SetTitle(title)
    chart.SetXAxisTitle(_axisTitle(tableNode, xColumn))
    chart.SetYAxisTitle(_axisTitle(tableNode, yColumn))
    chart.SetLegendVisibility(False)
    tableNode.SetNodeReferenceID(CHART_REFERENCE, chart.GetID())
    return chart


def _axisTitle(tableNode, column: str) -> str:
    unit = tableNode.GetColumnUnitLabel(column)
    return f"{column} [{unit}]" if unit else column


def _vtkColumn(name: str, values: list):
    present = [value for value in values if not _isMissing(value)]
    if (
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
