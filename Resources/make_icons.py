"""Draw SpineAI's icons: four vertebral bodies in a gentle curve with the spinal cord behind them.

Run ``QT_QPA_PLATFORM=offscreen python Resources/make_icons.py`` from the repository root; it writes
the extension icon (Resources/SpineAI.png) and the module icon (SpineAI/Resources/Icons/SpineAI.png),
both 128x128 with a transparent background. The cord is drawn in its terminology colour (244, 214, 49).
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


if __name__ == "__main__":
    app = QGuiApplication([])
    icon = draw()
    for path in (ROOT / "Resources" / "SpineAI.png", ROOT / "SpineAI" / "Resources" / "Icons" / "SpineAI.png"):
        path.parent.mkdir(parents=True, exist_ok=True)
        assert icon.save(str(path)), path
        print(path)
