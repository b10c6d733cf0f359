"""`python -m model`: the preset table with parameter counts of each network, and each preset's recipe
(XMC-GAN's, then MirrorGAN's: model/mirrorgan/__main__.py).

Counts depend on the text width (the sentence projections and region layers): shown for
BERT-base (768, the authors' encoder) and MiniLM-L6 (384, the offline default here).
"""

from __future__ import annotations

import argparse

import torch

from .config import PRESETS, preset
from .discriminator import Discriminator
from .generator import Generator

TEXT_WIDTHS = {"BERT-base 768": 768, "MiniLM 384": 384}


def parameter_count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def preset_rows(text_dim: int) -> list[dict]:
    """One row per preset: sizes and G / D parameter counts at `text_dim` (built on the meta device)."""
    rows = []
    for name, entry in PRESETS.items():
        if entry.architecture != "xmcgan":  # MirrorGAN presets: model/mirrorgan/__main__.py
            continue
        config, loss = preset(name, text_dim=text_dim)
        with torch.device("meta"):
            generator, discriminator = Generator(config), Discriminator(config)
        rows.append(
            dict(
                preset=name,
                image=f"{config.image_size}x{config.image_size}",
                G=parameter_count(generator),
                D=parameter_count(discriminator),
                widths=f"G {config.g_base}x{list(config.g_channels)}  D {config.d_base}x{list(config.d_channels)}",
                attention=f"G {config.attention_size}x{config.attention_size}, D regions "
                f"{config.region_size}x{config.region_size}",
                vgg=f"{loss.vgg_layer} @ {loss.vgg_input_size or config.image_size}px",
                description=entry.description,
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m model", description=__doc__)
    parser.parse_args()
    columns = {label: {row["preset"]: row for row in preset_rows(width)} for label, width in TEXT_WIDTHS.items()}
    first = next(iter(columns.values()))
    header = f"{'preset':<11} {'image':<8}" + "".join(f" {'G / D params, ' + label:>31}" for label in columns)
    print(header)
    print("-" * len(header))
    for name, row in first.items():
        counts = "".join(
            f" {columns[label][name]['G'] / 1e6:>14.2f}M / {columns[label][name]['D'] / 1e6:>6.2f}M"
            for label in columns
        )
        print(f"{name:<11} {row['image']:<8}{counts}")
    print()
    for name, row in first.items():
        print(f"{name}: {row['description']}")
        print(f"    widths {row['widths']}; attention {row['attention']}; VGG loss {row['vgg']}")
        recipe = PRESETS[name].recipe
        print("    recipe " + ", ".join(f"{key} {list(v) if isinstance(v, tuple) else v}" for key, v in recipe.items()))
    print()
    from .mirrorgan.__main__ import print_table as print_mirrorgan_table

    print_mirrorgan_table()


if __name__ == "__main__":
    main()
