"""Lumbar central stenosis: disc levels, the dural sac at each level, its measurements and grades.

``levels`` finds or reads the disc levels L1-L2 ... L5-S1, ``planes`` cuts the scan across the
canal at each level, ``segment`` finds the dural sac, CSF and posterior epidural fat in those
planes, ``grading`` turns the measured masks into Schizas and Lee grades by documented rules.
"""
