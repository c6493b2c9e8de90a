"""mibe's training subpackage: continual pre-training, LoRA instruction tuning, task fine-tuning.

`mibe train pretrain|sft|task` runs it; the recipes (YAML, DeepSpeed JSON, data mixes) live in the
top-level `training/` folder. The rest of mibe never imports this package, and importing it stays
light: torch, transformers, peft and datasets load inside the functions that train.
"""
