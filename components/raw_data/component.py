"""kfp component: the raw inputs of a run, versioned (the demo dataset, the user's data, or a DVC revision)."""

from kfp import dsl
from kfp.dsl import Dataset, Output

from components.container_image import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def raw_data_version(raw_data_uri: str, dvc_repo: str, dvc_rev: str, demo: dict) -> str:
    """Which raw data this run reads (never cached: it is what tells a cached raw-data step from a stale one)."""
    from components.raw_data import raw_data_version as version_of

    return version_of(raw_data_uri=raw_data_uri, dvc_repo=dvc_repo, dvc_rev=dvc_rev, demo=demo)


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def raw_data(version: str, raw_data_uri: str, dvc_repo: str, dvc_rev: str, demo: dict, raw: Output[Dataset]) -> str:
    """Raw COCO / Localized Narratives inputs; returns their data version (DVC hash). With neither
    raw_data_uri nor dvc_repo: the demo dataset, drawn with `demo` (DemoDataConfig fields).

    `version` (from raw_data_version) is what the cache keys on: the same version, the same raw
    data, so a cached result is reused and every step after it can be too."""
    from components.raw_data import resolve_raw_data

    summary = resolve_raw_data(out=raw.path, raw_data_uri=raw_data_uri, dvc_repo=dvc_repo, dvc_rev=dvc_rev, demo=demo)
    raw.metadata.update(summary)
    return summary["data_version"]
