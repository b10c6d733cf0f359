"""Shared fixtures. Tests run offline: telemetry off, hubs offline."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
COCO_MINI = SHARED_DATA / "coco-mini"


@pytest.fixture(scope="session")
def coco_mini() -> Path:
    """The small real COCO subset; tests that need it skip in an outside clone without ../shared."""
    if not (COCO_MINI / "annotations" / "captions_train2017.json").is_file():
        pytest.skip(f"COCO-MINI not found at {COCO_MINI} (../shared/data is only present in the project's CI)")
    return COCO_MINI


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory) -> Path:
    """A small demo dataset in the published formats, written once per test session."""
    from components.demo_data import DemoDataConfig, write_demo_dataset

    root = tmp_path_factory.mktemp("demo")
    write_demo_dataset(DemoDataConfig(out=root, train_images=48, val_images=16, image_size=64, seed=7))
    return root


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory) -> str:
    """A one-layer BERT with MiniLM's tokenizer, saved like any transformers model: an encoder given by path."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from model.text_encoder import DEFAULT_TEXT_ENCODER, resolve_encoder_path

    folder = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = AutoTokenizer.from_pretrained(resolve_encoder_path(DEFAULT_TEXT_ENCODER))
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
    )
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def write_processed(raw_root: Path, out: Path, *, image_size: int, max_length: int = 17) -> Path:
    """Records and caption embeddings of a demo dataset in the model/data.py contract, written
    directly (no Beam): a fast fixture for training and evaluation tests; ingest has its own tests."""
    import io
    import json

    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    from model.data import EMBEDDING_SCHEMA, RECORD_SCHEMA, embeddings_dir, embeddings_root, records_dir
    from model.text_encoder import TextEncoder

    encoder = TextEncoder(max_length=max_length)
    for split in ("train", "val"):
        coco = json.loads((raw_root / "annotations" / f"captions_{split}2017.json").read_text())
        captions = {}
        for annotation in coco["annotations"]:
            captions.setdefault(annotation["image_id"], []).append(annotation["caption"])
        records, embeddings = [], []
        for image in coco["images"]:
            pil = Image.open(raw_root / f"{split}2017" / image["file_name"]).convert("RGB")
            png = io.BytesIO()
            pil.resize((image_size, image_size), Image.Resampling.BILINEAR).save(png, format="PNG")
            texts = captions[image["id"]]
            records.append(
                {
                    "image_id": str(image["id"]),
                    "source": "coco",
                    "split": split,
                    "file_name": image["file_name"],
                    "image": png.getvalue(),
                    "width": image_size,
                    "height": image_size,
                    "original_width": pil.width,
                    "original_height": pil.height,
                    "captions": texts,
                }
            )
            encoded = encoder(texts)
            for index, text in enumerate(texts):
                embeddings.append(
                    {
                        "image_id": str(image["id"]),
                        "source": "coco",
                        "split": split,
                        "caption_index": index,
                        "caption": text,
                        "token_embeddings": encoded.words[index].half().numpy().tobytes(),
                        "attention_mask": encoded.mask[index].numpy().astype(np.uint8).tobytes(),
                        "sentence_embedding": encoded.sentence[index].float().numpy().tobytes(),
                    }
                )
        for folder, rows, schema in (
            (records_dir(out, "coco", split), records, RECORD_SCHEMA),
            (embeddings_dir(out, encoder.name, max_length, "coco", split), embeddings, EMBEDDING_SCHEMA),
        ):
            Path(folder).mkdir(parents=True, exist_ok=True)
            half = len(rows) // 2  # two shards, as ingest writes several
            for part, chunk in enumerate((rows[:half], rows[half:])):
                pq.write_table(pa.Table.from_pylist(chunk, schema=schema), Path(folder) / f"part-{part:05d}.parquet")
    (Path(embeddings_root(out, encoder.name, max_length)) / "encoder.json").write_text(
        json.dumps({"name": encoder.name, "max_length": max_length, "dim": encoder.dim})
    )
    return out


@pytest.fixture(scope="session")
def processed_demo(demo_root, tmp_path_factory) -> Path:
    """The session's demo dataset as processed data (records + MiniLM embeddings), 32x32 images."""
    return write_processed(demo_root, tmp_path_factory.mktemp("processed"), image_size=32)
