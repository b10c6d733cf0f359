"""Each loss term against values computed by hand on tiny inputs."""

import math

import pytest
import torch

from model.losses import hinge_discriminator, hinge_generator, info_nce, word_region_contrastive, word_region_scores

GAMMAS = dict(gamma1=5.0, gamma2=5.0, gamma3=50.0)


def logsumexp(*values: float) -> float:
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values))


def test_hinge_losses():
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.5])
    # D: mean(relu(1 - [2, .5])) + mean(relu(1 + [-2, .5])) = (0 + .5)/2 + (0 + 1.5)/2
    assert hinge_discriminator(real, fake).item() == pytest.approx(1.0)
    assert hinge_generator(fake).item() == pytest.approx(0.75)


def test_info_nce_by_hand():
    x = torch.tensor([[2.0, 0.0], [1.0, 1.0]])  # normalised: [1, 0], [r, r] with r = 1/sqrt(2)
    y = torch.tensor([[1.0, 0.0], [0.0, 3.0]])  # normalised: [1, 0], [0, 1]
    r = 1 / math.sqrt(2)
    # x -> y logits / 0.1: [[10, 0], [10r, 10r]]; y -> x: [[10, 10r], [0, 10r]]
    x_to_y = (logsumexp(10, 0) - 10 + logsumexp(10 * r, 10 * r) - 10 * r) / 2
    y_to_x = (logsumexp(10, 10 * r) - 10 + logsumexp(0, 10 * r) - 10 * r) / 2
    assert info_nce(x, y, temperature=0.1).item() == pytest.approx(x_to_y + y_to_x, rel=1e-5)


def test_word_region_scores_attend_over_regions():
    # One caption of one word [1, 0]; one image with regions [1, 0] and [0, 1].
    # Attention over regions softmax(gamma1 * [1, 0]) = [a, b]; context = [a, b]; cos = a / |(a, b)|;
    # score = gamma3 / gamma2 * log exp(gamma2 * cos) = gamma3 * cos.
    a, b = math.exp(5) / (math.exp(5) + 1), 1 / (math.exp(5) + 1)
    scores = word_region_scores(torch.tensor([[[1.0, 0.0], [0.0, 1.0]]]), torch.tensor([[[1.0, 0.0]]]),
                                torch.tensor([[True]]), **GAMMAS)  # fmt: skip
    assert scores.item() == pytest.approx(50 * a / math.hypot(a, b), rel=1e-5)


def test_word_region_scores_equal_the_direct_context_computation():
    g = torch.Generator().manual_seed(0)
    regions, words = torch.randn(3, 9, 5, generator=g), torch.randn(4, 6, 5, generator=g)
    mask = torch.arange(6)[None] < torch.tensor([[2], [6], [3], [1]])
    r, w = torch.nn.functional.normalize(regions, dim=-1), torch.nn.functional.normalize(words, dim=-1)
    attention = (5.0 * torch.einsum("itd,jrd->ijtr", w, r)).softmax(-1)
    context = torch.einsum("ijtr,jrd->ijtd", attention, r)  # the authors' region context per word and pair
    cosine = torch.nn.functional.cosine_similarity(w[:, None], context, dim=-1)
    expected = 10.0 * (5.0 * cosine).masked_fill(~mask[:, None], float("-inf")).logsumexp(-1)
    torch.testing.assert_close(word_region_scores(regions, words, mask, **GAMMAS), expected)


def word_example(padded_word: list[float]):
    regions = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]])  # two images, one region each
    words = torch.tensor([[[1.0, 0.0], padded_word], [[0.0, 1.0], [1.0, 0.0]]])
    mask = torch.tensor([[True, False], [True, True]])
    return regions, words, mask


def test_word_region_contrastive_by_hand():
    # One region: each word's context is the region itself. Scores S[caption, image] = 10 log sum_t exp(5 cos):
    # S = [[50, 0], [s, s]] with s = 10 log(1 + e^5) (caption 1 has one word matching each image).
    s = 10 * math.log(1 + math.exp(5))
    captions_pick_images = (logsumexp(50, 0) - 50 + logsumexp(s, s) - s) / 2
    images_pick_captions = (logsumexp(50, s) - 50 + logsumexp(0, s) - s) / 2
    expected = captions_pick_images + images_pick_captions
    regions, words, mask = word_example([0.0, 1.0])
    scores = word_region_scores(regions, words, mask, **GAMMAS)
    torch.testing.assert_close(scores, torch.tensor([[50.0, 0.0], [s, s]]))
    assert word_region_contrastive(regions, words, mask, **GAMMAS).item() == pytest.approx(expected, rel=1e-5)


def test_padded_words_never_count_in_the_word_loss():
    losses = [word_region_contrastive(*word_example(pad), **GAMMAS) for pad in ([0.0, 1.0], [1.0, 0.0], [-7.0, 3.0])]
    assert losses[0] == losses[1] == losses[2]
    regions, words, mask = word_example([0.0, 1.0])
    mask[0, 1] = True  # the same word counted as real does change the loss
    assert word_region_contrastive(regions, words, mask, **GAMMAS) != losses[0]


def test_global_negatives_average_to_the_global_batch_loss():
    """Two 'processes' with two rows each, negatives gathered: their mean is the loss on all four."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(4, 5, generator=g), torch.randn(4, 5, generator=g)
    halves = [info_nce(x[i : i + 2], y[i : i + 2], temperature=0.1, x_all=x, y_all=y, offset=i) for i in (0, 2)]
    torch.testing.assert_close(sum(halves) / 2, info_nce(x, y, temperature=0.1))

    regions, words = torch.randn(4, 6, 5, generator=g), torch.randn(4, 3, 5, generator=g)
    mask = torch.tensor([[True, True, False], [True, False, False], [True, True, True], [True, True, False]])
    halves = [
        word_region_contrastive(regions[i : i + 2], words[i : i + 2], mask[i : i + 2], **GAMMAS,
                                regions_all=regions, words_all=words, mask_all=mask, offset=i)
        for i in (0, 2)
    ]  # fmt: skip
    torch.testing.assert_close(sum(halves) / 2, word_region_contrastive(regions, words, mask, **GAMMAS))
