"""Draw SpineAI's icons: four vertebral bodies in a gentle curve with the spinal cord behind them.

Run ``QT_QPA_PLATFORM=offscreen python Resources/make_icons.py`` from the repository root; it writes
the extension icon (Resources/SpineAI.png) and the module icon (SpineAI/Resources/Icons/SpineAI.png),
both 128x128 with a transparent background. The cord is drawn in its terminology colour (244, 214, 49).
It also writes the Sample Data thumbnail of the bundled scan (SpineAI/Resources/Icons/SpineAISampleT2.png):
its middle sagittal slice, superior up and anterior left, at the scan's physical aspect ratio.
"""

import math
from pathlib import Path

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QGuiApplication, QImage, QPainter, QPainterPath, QPen

ROOT = Path(__file__).resolve().parents[1]
SIZE = 128
BONE, BONE_EDGE, DISC = QColor(236, 226, 200), QColor(120, 104, 80), QColor(120, 170, 215)
CORD, CORD_EDGE, PLATE = QColor(244, 214, 49), QColor(150, 120, 20), QColor(38, 56, 84)


def curve_x(y: float) -> float:
    """Horizontal offset of the column at height y: a soft lordosis."""
    return 10 * math.sin((y - 14) / 100 * math.pi)


def draw() -> QImage:
    image = QImage(SIZE, SIZE, QImage.Format_ARGB32)
    image.fill(Qt.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.Antialiasing)
    painter.setPen(Qt.NoPen)
    painter.setBrush(PLATE)
    painter.drawRoundedRect(QRectF(4, 4, SIZE - 8, SIZE - 8), 22, 22)

    cord = QPainterPath(QPointF(80 + curve_x(12), 12))
    for y in range(13, 113):
        cord.lineTo(QPointF(80 + curve_x(y), y))
    painter.setBrush(Qt.NoBrush)
    painter.setPen(QPen(CORD_EDGE, 15, Qt.SolidLine, Qt.RoundCap))
    painter.drawPath(cord)
    painter.setPen(QPen(CORD, 11, Qt.SolidLine, Qt.RoundCap))
    painter.drawPath(cord)

    for index in range(4):
        top = 14 + index * 26
        centre = 46 + curve_x(top + 10)
        if index:
            painter.setPen(Qt.NoPen)
            painter.setBrush(DISC)
            painter.drawRoundedRect(QRectF(centre - 17, top - 5, 34, 6), 3, 3)
        painter.setPen(QPen(BONE_EDGE, 2.5))
        painter.setBrush(QBrush(BONE))
        painter.drawRoundedRect(QRectF(centre - 20, top, 40, 19), 6, 6)
    painter.end()
    return image


def sample_thumbnail(height: int = 192) -> QImage:
    """The bundled T2's middle sagittal slice, windowed to its 1st-99th percentile."""
    import numpy as np
    import SimpleITK as sitk

    image = sitk.DICOMOrient(sitk.ReadImage(str(ROOT / "SpineAI" / "spineai" / "sample" / "t2.nii.gz")), "PIL")
    array = sitk.GetArrayFromImage(image)  # [L, I, P]: a slice has superior at row 0, anterior at column 0
    plane = array[array.shape[0] // 2].astype(float)
    low, high = np.percentile(plane, (1, 99))
    grey = np.ascontiguousarray((np.clip((plane - low) / (high - low), 0, 1) * 255).astype(np.uint8))
    rows, columns = grey.shape
    picture = QImage(grey.data, columns, rows, columns, QImage.Format_Grayscale8).copy()
    spacing_p, spacing_i = image.GetSpacing()[:2]
    width = round(height * (columns * spacing_p) / (rows * spacing_i))
    return picture.scaled(width, height, Qt.IgnoreAspectRatio, Qt.SmoothTransformation)


if __name__ == "__main__":
    app = QGuiApplication([])
    thumbnail = ROOT / "SpineAI" / "Resources" / "Icons" / "SpineAISampleT2.png"
    assert sample_thumbnail().save(str(thumbnail)), thumbnail
    print(thumbnail)
    icon = draw()
    for path in (ROOT / "Resources" / "SpineAI.png", ROOT / "SpineAI" / "Resources" / "Icons" / "SpineAI.png"):
        path.parent.mkdir(parents=True, exist_ok=True)
        assert icon.save(str(path)), path
        print(path)
