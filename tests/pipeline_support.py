"""The tiny pipeline configuration the local end-to-end runs start from (seconds a step, no cluster)."""

TINY_RUN = {
    "sources": ["coco"],
    "demo": {"train_images": 100, "val_images": 24, "image_size": 64},
    "ingest": {"image_size": 32},
    "validate": {"split_min_images": {"train": 100, "val": 20}},
    "train": {"batch_size": 8, "total_images": 32},
    "evaluate": {"num_samples": 16, "rprecision_candidates": 8, "rprecision_repeats": 2, "demo_shapes": True},
    "deploy": {"prompts": ["a red circle in the center"]},
}
