"""`python -m model.mirrorgan`: the MirrorGAN presets with parameter counts of each network and their recipes.

Counts are at STEM's width of the authors' DAMSM (256); STEM and STREAM are pretrained networks and
are not counted in G (the GLAM generator with conditioning augmentation) or D (every stage's).
"""

from __future__ import annotations

import argparse

import torch

from ..config import PRESETS, preset
from .config import DAMSMConfig
from .discriminator import MirrorGANDiscriminator
from .glam import MirrorGANGenerator


def preset_rows(text_dim: int = DAMSMConfig().text_dim) -> list[dict]:
    rows = []
    for name, entry in PRESETS.items():
        if entry.architecture != "mirrorgan":
            continue
        config, loss = preset(name, text_dim=text_dim)
        with torch.device("meta"):
            generator, discriminator = MirrorGANGenerator(config), MirrorGANDiscriminator(config)
        rows.append(
            dict(
                preset=name,
                image=f"{config.image_size}x{config.image_size}",
                stages=" / ".join(str(s) for s in config.stage_sizes),
                G=sum(p.numel() for p in generator.parameters()),
                D=sum(p.numel() for p in discriminator.parameters()),
                widths=f"gf {config.g_base}, df {config.d_base}, {config.residual_blocks} residual blocks",
                loss=f"lambda {loss.stream_weight:g}, KL {loss.kl_weight:g}",
                description=entry.description,
            )
        )
    return rows


def print_table() -> None:
    rows = preset_rows()
    header = f"{'preset':<14} {'image':<8} {'stages':<16} {'G / D params, STEM 256':>24}"
    print(header)
    print("-" * len(header))
    for row in rows:
        counts = f"{row['G'] / 1e6:>12.2f}M / {row['D'] / 1e6:>6.2f}M"
        print(f"{row['preset']:<14} {row['image']:<8} {row['stages']:<16} {counts}")
    print()
    for row in rows:
        print(f"{row['preset']}: {row['description']}")
        print(f"    {row['widths']}; {row['loss']}")
        recipe = PRESETS[row["preset"]].recipe
        print("    recipe " + ", ".join(f"{key} {list(v) if isinstance(v, tuple) else v}" for key, v in recipe.items()))


def main() -> None:
    argparse.ArgumentParser(prog="python -m model.mirrorgan", description=__doc__).parse_args()
    print_table()


if __name__ == "__main__":
    main()
