"""FID and KID through torch-fidelity: the registered TF-Inception extractor, the metrics' behaviour,
equality with torch-fidelity's own `calculate_metrics` and FID statistics, the real-feature cache, and
torch-fidelity's standard extractor with user-supplied weights loaded safely."""

import json
import pickle
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torch_fidelity
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x
from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

from components.demo_data.scenes import render, sample_scene
from components.evaluate import fidelity
from components.evaluate.fidelity import (
    TF_INCEPTION,
    FeatureStatistics,
    ImageArray,
    RealFeaturesKey,
    cached_real_features,
    create_extractor,
    default_tf_inception_path,
    extract_features,
    fid_kid,
    file_sha256,
    frechet_distance,
)

PIXEL_STATS = "test-pixel-stats"


class PixelStatsExtractor(FeatureExtractorBase):
    """Cheap features for metric tests: 4x4 average pools of the pixels and of their gradient energy (96-d)."""

    def __init__(self, name, features_list, **kwargs):  # torch-fidelity passes its options to every extractor
        super().__init__(name, features_list)

    def forward(self, images):
        x = images.float() / 255
        energy = (x[..., 1:, 1:] - x[..., :-1, 1:]).abs() + (x[..., 1:, 1:] - x[..., 1:, :-1]).abs()
        return (torch.cat([F.adaptive_avg_pool2d(x, 4), F.adaptive_avg_pool2d(energy, 4)], 1).flatten(1),)

    @staticmethod
    def get_provided_features_list():
        return ("2048",)  # the layer name the evaluation asks every extractor for

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return "2048"

    @staticmethod
    def can_be_compiled():
        return False

    @staticmethod
    def get_dummy_input_for_compile():
        return torch.zeros(1, 3, 8, 8, dtype=torch.uint8)


if PIXEL_STATS not in FEATURE_EXTRACTORS_REGISTRY:
    torch_fidelity.register_feature_extractor(PIXEL_STATS, PixelStatsExtractor)


def shapes(count, *, size=32, seed=0):
    rng = random.Random(seed)
    return np.stack([np.asarray(render(sample_scene(rng, two_shape_fraction=0.3), size)) for _ in range(count)])


def with_noise(images, sigma, *, seed=0):
    noise = np.random.default_rng(seed).normal(0, sigma, images.shape)
    return np.clip(images + noise, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def tf_inception():
    return create_extractor()


def test_tf_inception_matches_a_direct_forward_of_the_torchscript_module(tf_inception):
    direct = torch.jit.load(str(default_tf_inception_path()), map_location="cpu").eval()
    small = shapes(3, size=64)
    full = shapes(2, size=299, seed=1)
    with torch.no_grad():
        x = torch.from_numpy(small).permute(0, 3, 1, 2).float()
        resized = interpolate_bilinear_2d_like_tensorflow1x(x, size=(299, 299), align_corners=False)
        expected_small = direct((resized - 128) / 128)
        expected_full = direct((torch.from_numpy(full).permute(0, 3, 1, 2).float() - 128) / 128)
    features_small = extract_features(small, tf_inception, batch_size=2)
    features_full = extract_features(full, tf_inception)
    assert features_small.shape == (3, 2048) and features_full.shape == (2, 2048)
    assert torch.allclose(features_small, expected_small, atol=1e-5)
    assert torch.allclose(features_full, expected_full, atol=1e-5)
    assert tf_inception.describe() == {
        "name": TF_INCEPTION,
        "weights_sha256": file_sha256(default_tf_inception_path()),
        "resize": "tf1-bilinear",
        "layer": "2048",
    }


def test_tf_inception_fid_is_zero_on_itself_and_grows_with_noise(tf_inception):
    images = shapes(8, size=64)
    clean = extract_features(images, tf_inception)
    noisy = extract_features(with_noise(images, 40), tf_inception)
    itself = fid_kid(clean, clean, kid_subsets=10)
    against_noise = fid_kid(noisy, clean, kid_subsets=10)
    assert abs(itself["fid"]) < 1e-6 and against_noise["fid"] > 10
    assert against_noise["kid_mean"] > itself["kid_mean"] + 5 * against_noise["kid_std"]


def test_fid_and_kid_are_zero_on_a_set_itself_and_grow_with_noise():
    extractor = create_extractor(PIXEL_STATS)
    images = shapes(150)
    reference = extract_features(images, extractor)
    scores = [
        fid_kid(extract_features(with_noise(images, sigma), extractor), reference, kid_subset_size=50)
        for sigma in (0, 8, 24, 64)
    ]
    itself, noisiest = scores[0], scores[-1]
    assert abs(itself["fid"]) < 1e-6
    assert abs(itself["kid_mean"]) < 3 * itself["kid_std"]  # KID's subsets differ: zero within its spread
    fids, kids = [s["fid"] for s in scores], [s["kid_mean"] for s in scores]
    assert fids == sorted(fids) and fids[1] > 1e-3 and fids[3] > 10 * fids[1]
    assert kids == sorted(kids) and noisiest["kid_mean"] > 10 * itself["kid_std"]
    assert scores[1]["kid_subset_size"] == 50 and scores[1]["kid_subsets"] == 100


def test_another_set_of_the_same_distribution_is_closer_than_a_noisy_one():
    extractor = create_extractor(PIXEL_STATS)
    reference = extract_features(shapes(100, seed=0), extractor)
    same_kind = fid_kid(extract_features(shapes(100, seed=1), extractor), reference)
    noisy = fid_kid(extract_features(with_noise(shapes(100, seed=1), 40), extractor), reference)
    assert 0 < same_kind["fid"] < noisy["fid"]


def test_scores_equal_torch_fidelity_calculate_metrics():
    extractor = create_extractor(PIXEL_STATS)
    generated, real = with_noise(shapes(40, seed=1), 20), shapes(60, seed=2)
    ours = fid_kid(
        extract_features(generated, extractor), extract_features(real, extractor), kid_subset_size=30, seed=5
    )
    theirs = torch_fidelity.calculate_metrics(
        input1=ImageArray(generated),
        input2=ImageArray(real),
        feature_extractor=PIXEL_STATS,
        fid=True,
        kid=True,
        kid_subset_size=30,
        rng_seed=5,
        cuda=False,
        cache=False,
        save_cpu_ram=True,
        verbose=False,
    )
    assert ours["fid"] == pytest.approx(theirs["frechet_inception_distance"], rel=1e-6)
    assert ours["kid_mean"] == pytest.approx(theirs["kernel_inception_distance_mean"], rel=1e-6)
    assert ours["kid_std"] == pytest.approx(theirs["kernel_inception_distance_std"], rel=1e-6)


@pytest.mark.parametrize("chunk_rows", [4096, 64])
@pytest.mark.parametrize(("generated", "real"), [(40, 60), (150, 300), (30, 500)])
def test_frechet_distance_equals_torch_fidelity_with_fewer_or_more_samples_than_dimensions(
    generated, real, chunk_rows, monkeypatch
):
    """More samples than dimensions (96) takes the accumulated covariance, in one chunk of rows or several."""
    monkeypatch.setattr(fidelity, "STATISTICS_CHUNK_ROWS", chunk_rows)
    rng = torch.Generator().manual_seed(generated)
    features_g = torch.randn(generated, 96, generator=rng) * 0.5 + 0.1
    features_r = torch.randn(real, 96, generator=rng).square()
    expected = fid_statistics_to_metric(
        fid_features_to_statistics(features_g), fid_features_to_statistics(features_r), False
    )["frechet_inception_distance"]
    statistics_g, statistics_r = FeatureStatistics.of(features_g), FeatureStatistics.of(features_r)
    assert frechet_distance(statistics_g, statistics_r) == pytest.approx(expected, rel=1e-7)
    assert abs(frechet_distance(statistics_r, statistics_r)) < 1e-9


def test_too_few_samples_is_a_clear_error():
    with pytest.raises(ValueError, match="at least 2 samples"):
        fid_kid(torch.zeros(1, 4), torch.zeros(5, 4))


def test_real_features_are_cached_per_key(tmp_path):
    key = RealFeaturesKey("v1", "coco", "val", PIXEL_STATS, "abc", "tf1-bilinear", 64, 3)
    calls = []

    def compute(allocate):
        calls.append(1)
        features = allocate(3, 4)
        features[:] = torch.arange(12, dtype=torch.float32).view(3, 4)
        return features

    first, hit_first = cached_real_features(key, tmp_path, compute)
    second, hit_second = cached_real_features(key, tmp_path, compute)
    assert (hit_first, hit_second) == (False, True) and len(calls) == 1
    assert torch.equal(first, second) and torch.equal(first, torch.arange(12, dtype=torch.float32).view(3, 4))
    _, hit_other = cached_real_features(RealFeaturesKey(**{**key.__dict__, "data_version": "v2"}), tmp_path, compute)
    assert not hit_other and len(calls) == 2
    (path,) = (tmp_path / "real-features").glob(f"*{key.digest()}.npy")
    assert np.load(path, allow_pickle=False).tolist() == first.tolist()  # a plain .npy: no pickle to read it
    assert json.loads(path.with_suffix(".json").read_text())["data_version"] == "v1"
    second[0, 0] = -1.0  # copy-on-write: the cache file keeps its values
    assert cached_real_features(key, tmp_path, compute)[0][0, 0] == 0.0
    wrong_count = RealFeaturesKey(**{**key.__dict__, "num_images": 4})
    path.rename(path.with_name(f"{PIXEL_STATS}-{wrong_count.digest()}.npy"))
    with pytest.raises(ValueError, match="hold 3 rows, expected 4"):
        cached_real_features(wrong_count, tmp_path, compute)
    other = RealFeaturesKey(**{**key.__dict__, "data_version": "v3"})
    with pytest.raises(ValueError, match="must return the tensor allocate gave it"):
        cached_real_features(other, tmp_path, lambda allocate: allocate(3, 4).clone())
    assert not list((tmp_path / "real-features").glob("*.partial"))  # a failed computation leaves nothing


@pytest.fixture(scope="module")
def inception_compat_weights(tmp_path_factory):
    """Randomly initialised weights for torch-fidelity's InceptionV3 (its real weights download)."""
    from torch_fidelity import feature_extractor_inceptionv3 as module

    original_load, original_download = (
        module.FeatureExtractorInceptionV3.load_state_dict,
        module.load_state_dict_from_url,
    )
    module.FeatureExtractorInceptionV3.load_state_dict = lambda self, state_dict: None
    module.load_state_dict_from_url = lambda *args, **kwargs: None
    try:
        torch.manual_seed(0)
        network = module.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    finally:
        module.FeatureExtractorInceptionV3.load_state_dict, module.load_state_dict_from_url = (
            original_load,
            original_download,
        )
    path = tmp_path_factory.mktemp("weights") / "inception.pth"
    torch.save(network.state_dict(), path)
    return path


def test_standard_extractor_takes_user_weights(inception_compat_weights):
    extractor = create_extractor("inception-v3-compat", weights=inception_compat_weights)
    assert extractor.weights_sha256 == file_sha256(inception_compat_weights)
    assert extract_features(shapes(2), extractor).shape == (2, 2048)


class Payload:
    def __reduce__(self):
        return (print, ("arbitrary code ran",))


def test_weights_are_never_unpickled(tmp_path, inception_compat_weights):
    hostile = tmp_path / "hostile.pth"
    state = torch.load(inception_compat_weights, weights_only=True)
    state["payload"] = Payload()
    torch.save(state, hostile, pickle_module=pickle)
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        create_extractor("inception-v3-compat", weights=hostile)


def test_extractor_options_are_checked(tmp_path):
    with pytest.raises(ValueError, match="needs a weights path"):
        create_extractor("inception-v3-compat")
    with pytest.raises(FileNotFoundError, match="weights not found"):
        create_extractor(TF_INCEPTION, weights=tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="not registered"):
        create_extractor("no-such-extractor")
    with pytest.raises(ValueError, match="expected uint8 images"):
        ImageArray(np.zeros((2, 8, 8, 3), np.float32))
