"""The server's own Prometheus metrics, on /metrics beside kserve's request histograms."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

BATCH_IMAGES = Histogram(
    "xmcgan_serve_batch_images", "Images per generator call", buckets=(1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64)
)
REJECTED_REQUESTS = Counter("xmcgan_serve_rejected_requests_total", "Requests refused because the queue was full")
# where a request's time goes inside the server: queue (submitted until its batch starts), then
# per batch in the generator thread: text (prompt embeddings), generate (generator + uint8), png
STAGE_SECONDS = Histogram(
    "xmcgan_serve_stage_seconds",
    "Seconds per stage: queue per request; text, generate and png per batch",
    ["stage"],
    buckets=(0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024),
)
PROMPT_LOOKUPS = Counter("xmcgan_serve_prompt_cache_lookups_total", "Prompt-embedding lookups", ["result"])
PROMPT_ENTRIES = Gauge("xmcgan_serve_prompt_cache_entries", "Prompt embeddings held")
PROMPT_BYTES = Gauge("xmcgan_serve_prompt_cache_bytes", "Bytes of the prompt embeddings held")
