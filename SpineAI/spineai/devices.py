"""The devices a network can run on, as every command line and panel spells them.

Kept free of the deep-learning runtime so that parsers and panels can list them without loading it.
"""

DEVICES = ("auto", "cpu", "cuda")  # auto: CUDA when present, else the CPU
