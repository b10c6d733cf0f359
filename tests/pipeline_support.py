"""The tiny pipeline configuration the local end-to-end runs start from (seconds a step, no cluster)."""

TINY_RUN = {
    "sources": ["coco"],
    "demo_train_images": 100,
    "demo_val_images": 24,
    "demo_image_size": 64,
    "image_size": 32,
    "split_min_train": 100,
    "split_min_val": 20,
    "train_overrides": {"batch_size": 8, "total_images": 32},
    "eval_samples": 16,
    "rprecision_candidates": 8,
    "rprecision_repeats": 2,
    "demo_shapes": True,
    "deploy_prompts": ["a red circle in the center"],
}
