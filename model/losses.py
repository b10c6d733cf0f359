"""The XMC-GAN loss terms as pure functions of features (Zhang et al. 2021, Sec. 3-4; the
authors' libml/losses.py and libml/attention_lib.py).

Contrastive terms take this process's rows and, optionally, the rows of the whole distributed
batch (`*_all`, with this process's rows at `offset`): negatives then run over the global batch,
and the mean of the per-process losses equals the single-process loss on the global batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def hinge_discriminator(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """L_D = E[max(0, 1 - D(x))] + E[max(0, 1 + D(G(z)))]."""
    return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()


def hinge_generator(fake_logits: torch.Tensor) -> torch.Tensor:
    """L_G = -E[D(G(z))]."""
    return -fake_logits.mean()


def _labels(rows: int, offset: int, device: torch.device) -> torch.Tensor:
    return torch.arange(offset, offset + rows, device=device)


def info_nce(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    temperature: float,
    x_all: torch.Tensor | None = None,
    y_all: torch.Tensor | None = None,
    offset: int = 0,
) -> torch.Tensor:
    """Symmetric InfoNCE between L2-normalised pairs (x_i, y_i), x, y (b, d):

        L = -1/b Σ_i log softmax_j(x̂_i·ŷ_j / τ)[i]  -  1/b Σ_i log softmax_j(ŷ_i·x̂_j / τ)[i]

    j runs over x_all / y_all (the global batch) when given, else over the local batch.
    Used for image-sentence (x = D's image features, y = projected sentence) and image-image
    pairs (x = features of G(z, s_i), y = features of the real image of s_i).
    """
    x, y = F.normalize(x, dim=-1), F.normalize(y, dim=-1)
    x_all = x if x_all is None else F.normalize(x_all, dim=-1)
    y_all = y if y_all is None else F.normalize(y_all, dim=-1)
    labels = _labels(len(x), offset, x.device)
    return F.cross_entropy(x @ y_all.T / temperature, labels) + F.cross_entropy(y @ x_all.T / temperature, labels)


def word_region_scores(
    regions: torch.Tensor, words: torch.Tensor, mask: torch.Tensor, *, gamma1: float, gamma2: float, gamma3: float
) -> torch.Tensor:
    """Caption-image matching scores S (n_captions, n_images) of AttnGAN's DAMSM, as XMC-GAN uses them.

    regions (n_images, R, d), words (n_captions, T, d), mask (n_captions, T) bool. For caption i
    and image j, each word t attends over the image's regions, giving a region context
        c_ijt = Σ_r softmax_r(γ1 cos(w_it, r_jr)) r̂_jr
    and the caption-image score aggregates word-context cosines over the caption's real words:
        S_ij = γ3 / γ2 · log Σ_{t: mask_it} exp(γ2 cos(w_it, c_ijt)).

    The context vectors (n_captions x n_images x T x d numbers) are never formed: with
    s_ijtr = cos(w_it, r_jr) and a_ijtr the attention weights,
        ŵ_it·c_ijt = Σ_r a_ijtr s_ijtr   and   |c_ijt|² = a_ijt^T (R̂_j R̂_j^T) a_ijt,
    which costs R² instead of R·d per word and pair (d is the text width, R the regions).
    """
    regions, words = F.normalize(regions, dim=-1), F.normalize(words, dim=-1)
    similarity = torch.einsum("itd,jrd->ijtr", words, regions)
    attention = (gamma1 * similarity).softmax(-1)
    region_gram = regions @ regions.transpose(1, 2)  # (n_images, R, R)
    context_norm_sq = (torch.einsum("ijtr,jrq->ijtq", attention, region_gram) * attention).sum(-1)
    cosine = (attention * similarity).sum(-1) / context_norm_sq.clamp_min(1e-16).sqrt()
    logits = (gamma2 * cosine).masked_fill(~mask[:, None, :], float("-inf"))
    return gamma3 / gamma2 * logits.logsumexp(-1)


def word_region_contrastive(
    regions: torch.Tensor,
    words: torch.Tensor,
    mask: torch.Tensor,
    *,
    gamma1: float,
    gamma2: float,
    gamma3: float,
    regions_all: torch.Tensor | None = None,
    words_all: torch.Tensor | None = None,
    mask_all: torch.Tensor | None = None,
    offset: int = 0,
) -> torch.Tensor:
    """Region-word contrastive loss on the scores S of `word_region_scores` (rows of caption i,
    image i are positives):

        L = -1/b Σ_i log softmax_j(S_ij)[i]  -  1/b Σ_j log softmax_i(S_ij)[j]

    i.e. each caption picks its image and each image its caption; the other member of the
    pair runs over the global batch when `*_all` are given. Padded words (mask False) never count.
    """
    gammas = dict(gamma1=gamma1, gamma2=gamma2, gamma3=gamma3)
    labels = _labels(len(regions), offset, regions.device)
    if regions_all is None:
        scores = word_region_scores(regions, words, mask, **gammas)
        return F.cross_entropy(scores, labels) + F.cross_entropy(scores.T, labels)
    captions_to_images = word_region_scores(regions_all, words, mask, **gammas)  # (b, B)
    images_to_captions = word_region_scores(regions, words_all, mask_all, **gammas).T  # (b, B)
    return F.cross_entropy(captions_to_images, labels) + F.cross_entropy(images_to_captions, labels)
