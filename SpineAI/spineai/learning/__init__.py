"""Learning from the user's corrections: a site folder of corrected cases (``site``), fine-tuning the
model in use on them without forgetting what it knew (``finetune``), and the model folder that
results, used with ``spineai segment --model``. See ``docs/learning.md``."""
