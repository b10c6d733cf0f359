"""Caption embeddings: the pipeline's output equals a direct forward of the encoder, per source max length."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from components.embed import EmbedConfig, run_embed
from components.embed.__main__ import parse_arguments
from components.embed.handler import TextEncoderHandler, encode_batch
from model.data import EMBEDDING_SCHEMA, RECORD_SCHEMA, embeddings_dir, embeddings_root, records_dir
from model.text_encoder import DEFAULT_TEXT_ENCODER, TextEncoder

CAPTIONS = {
    ("coco", "train"): {"1": ["a red circle", "a big red circle on the left"], "2": ["a blue square at the top"]},
    ("coco", "val"): {"3": ["a green triangle in the center of a white background, small and bright"]},
    ("ln_coco", "train"): {"1": ["In this image we can see a red circle. The background is white."]},
}


def write_records(root: Path, captions=CAPTIONS) -> Path:
    """Records in the ingest contract (two shards per table), as ingest would write them."""
    for (source, split), by_image in captions.items():
        rows = [
            {"image_id": image_id, "source": source, "split": split, "file_name": f"{image_id}.jpg", "image": b"png",
             "width": 8, "height": 8, "original_width": 8, "original_height": 8, "captions": texts}
            for image_id, texts in by_image.items()
        ]  # fmt: skip
        folder = Path(records_dir(root, source, split))
        folder.mkdir(parents=True)
        for part, chunk in enumerate((rows[:1], rows[1:])):
            pq.write_table(pa.Table.from_pylist(chunk, schema=RECORD_SCHEMA), folder / f"part-{part:05d}.parquet")
    return root


def read_embeddings(root: Path, encoder: str, max_length: int, source: str, split: str) -> list[dict]:
    folder = Path(embeddings_dir(root, encoder, max_length, source, split))
    shards = sorted(folder.glob("part-*.parquet"))
    assert shards and all(pq.read_schema(s).equals(EMBEDDING_SCHEMA) for s in shards)
    return pq.read_table(folder, schema=EMBEDDING_SCHEMA).to_pylist()


def test_encode_batch_copies_each_caption_out_of_the_batch(tiny_encoder):
    model = TextEncoder(tiny_encoder, max_length=9)
    captions = ["a red circle", "a blue square on a white background with a lot of extra words"]
    out = encode_batch(model, captions)
    direct = model(captions)
    for i, embedding in enumerate(out):
        words = np.frombuffer(embedding.token_embeddings, np.float16).reshape(9, model.dim)
        assert np.allclose(words, direct.words[i].numpy(), atol=1e-2)
        assert np.frombuffer(embedding.attention_mask, np.uint8).tolist() == direct.mask[i].int().tolist()
        assert np.allclose(
            np.frombuffer(embedding.sentence_embedding, np.float32), direct.sentence[i].numpy(), atol=1e-6
        )
    assert np.frombuffer(out[1].attention_mask, np.uint8).sum() == 9  # the long caption is cut at max_length
    handler = TextEncoderHandler(encoder=tiny_encoder, max_length=9, batch_size=5)
    assert handler.batch_elements_kwargs() == {"min_batch_size": 5, "max_batch_size": 5}
    assert handler.get_num_bytes(["ab", "é"]) == 4


def test_pipeline_matches_a_direct_forward_per_source_length(tiny_encoder, tmp_path):
    root = write_records(tmp_path)
    summary = run_embed(
        config=EmbedConfig(
            data_root=str(root),
            sources=("coco", "ln_coco"),
            encoder=tiny_encoder,
            max_lengths={"coco": 6, "ln_coco": 12},
            batch_size=2,
            shard_bytes=1024,
        )
    )
    assert summary["captions"] == 5 and summary["dim"] == 32
    for (source, split), by_image in CAPTIONS.items():
        max_length = 6 if source == "coco" else 12
        rows = read_embeddings(root, tiny_encoder, max_length, source, split)
        expected = [(i, k, c) for i, texts in by_image.items() for k, c in enumerate(texts)]
        assert sorted((r["image_id"], r["caption_index"], r["caption"]) for r in rows) == sorted(expected)
        model = TextEncoder(tiny_encoder, max_length=max_length)
        direct = model([r["caption"] for r in rows])
        for i, row in enumerate(rows):
            words = np.frombuffer(row["token_embeddings"], np.float16).reshape(max_length, 32)
            mask = np.frombuffer(row["attention_mask"], np.uint8).astype(bool)
            sentence = np.frombuffer(row["sentence_embedding"], np.float32)
            assert np.allclose(words, direct.words[i].numpy(), atol=1e-2)
            assert mask.tolist() == direct.mask[i].tolist()
            assert np.allclose(sentence, words[mask].astype(np.float32).mean(0), atol=1e-2)
        info = json.loads((Path(embeddings_root(root, tiny_encoder, max_length)) / "encoder.json").read_text())
        assert (info["name"], info["max_length"], info["dim"]) == (tiny_encoder, max_length, 32)


def test_default_encoder_runs_offline_with_17_and_64_tokens(tmp_path):
    root = write_records(tmp_path, {k: v for k, v in CAPTIONS.items() if k[1] == "train"})
    summary = run_embed(config=EmbedConfig(data_root=str(root), sources=("coco", "ln_coco")))
    assert summary["tables"] == {
        "sentence-transformers--all-MiniLM-L6-v2-L17": {"coco": {"train": 3}},
        "sentence-transformers--all-MiniLM-L6-v2-L64": {"ln_coco": {"train": 1}},
    }
    (row,) = read_embeddings(root, DEFAULT_TEXT_ENCODER, 64, "ln_coco", "train")
    assert len(row["token_embeddings"]) == 64 * 384 * 2 and len(row["sentence_embedding"]) == 384 * 4


def test_missing_records_and_bad_options_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no coco records"):
        run_embed(config=EmbedConfig(data_root=str(tmp_path), sources=("coco",)))
    with pytest.raises(ValueError, match="max_lengths must be integers"):
        EmbedConfig(data_root="x", max_lengths={"coco": 1})
    config, _ = parse_arguments(["--data-root", "d", "--max-lengths", "{coco: 32}", "--sources", "[coco]"])
    assert config.max_lengths["coco"] == 32 and config.max_lengths["ln_coco"] == 64
    with pytest.raises(SystemExit):
        parse_arguments(["--data-root", "d", "--batch-size", "0"])
