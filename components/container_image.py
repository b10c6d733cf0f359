"""The container image every kfp component runs in (manifests/component.Dockerfile).

Set XMCGAN_IMAGE when compiling the pipeline for a cluster; local runs ignore it.
"""

import os

COMPONENT_IMAGE = os.environ.get("XMCGAN_IMAGE", "ghcr.io/xmcgan/xmcgan:latest")
