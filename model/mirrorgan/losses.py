"""MirrorGAN's loss terms as pure functions (the authors' miscc/losses.py; DAMSM's from AttnGAN).

Logits are pre-sigmoid; BCE(l, y) = -[y log σ(l) + (1 - y) log(1 - σ(l))], averaged over the batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def discriminator_stage_loss(
    *,
    real_unconditional: torch.Tensor,
    real_conditional: torch.Tensor,
    fake_unconditional: torch.Tensor,
    fake_conditional: torch.Tensor,
    mismatched_conditional: torch.Tensor,
) -> torch.Tensor:
    """One stage's discriminator loss, with u the unconditional and c the conditional logit:

        L_D = 1/2 [BCE(u(x), 1) + BCE(c(x, s), 1)] + 1/3 [BCE(u(G), 0) + BCE(c(G, s), 0) + BCE(c(x_i, s_i+1), 0)]

    the mismatched pairs being the real images 1..b-1 with the next image's sentence (b-1 pairs).
    """
    real = _bce(real_unconditional, 1.0) + _bce(real_conditional, 1.0)
    fake = _bce(fake_unconditional, 0.0) + _bce(fake_conditional, 0.0) + _bce(mismatched_conditional, 0.0)
    return real / 2 + fake / 3


def generator_stage_loss(*, fake_unconditional: torch.Tensor, fake_conditional: torch.Tensor) -> torch.Tensor:
    """L_G = BCE(u(G(z, s)), 1) + BCE(c(G(z, s), s), 1) for one stage (the generator's non-saturating loss)."""
    return _bce(fake_unconditional, 1.0) + _bce(fake_conditional, 1.0)


def kl_loss(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, σ²) || N(0, I)) of conditioning augmentation, averaged over elements:

    L_KL = -1/2 mean(1 + log σ² - mu² - σ²)."""
    return -0.5 * (1 + logvar - mu.square() - logvar.exp()).mean()


def caption_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """STREAM's redescription loss: mean cross-entropy of each caption word given the image and the words before it,

        L_cap = -1/N Σ_{captions i, t <= T_i} log p(w_it | image_i, w_i1 .. w_i(t-1))

    logits (N, V) and targets (N,) over the N words of the batch's captions."""
    return F.cross_entropy(logits, targets)


def _cosine(a: torch.Tensor, b: torch.Tensor, *, eps: float = 1e-8) -> torch.Tensor:
    """cos(a, b) over the last axis, as AttnGAN's cosine_similarity (the norms' product clamped at eps)."""
    return (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1)).clamp_min(eps)


def damsm_word_scores(
    regions: torch.Tensor, words: torch.Tensor, mask: torch.Tensor, *, gamma1: float, gamma2: float
) -> torch.Tensor:
    """DAMSM's word-level image-caption scores R (n_images, n_captions) (AttnGAN words_loss, func_attention).

    regions (n_images, R, d), words (n_captions, T, d), mask (n_captions, T) bool. For image j and caption i:
        s_tr = w_it · v_jr                               dot products, not cosines
        s̄_tr = softmax_t(s_tr)                           over the caption's words, for each region
        α_tr = softmax_r(γ1 s̄_tr)                        over the regions, for each word
        c_t = Σ_r α_tr v_jr                              each word's region context
        R_ji = log Σ_{t real} exp(γ2 cos(w_it, c_t))

    This is not XMC-GAN's region-word score (model/losses.py: cosine attention in one softmax, and a
    1/γ2 in front of the log-sum-exp), so the two are kept apart. The contexts (n_captions x n_images
    x T x d numbers) are never formed: w_it · c_t = Σ_r α_tr s_tr and |c_t|² = α_t^T (V_j V_j^T) α_t,
    which costs R² instead of R·d per word and pair.
    """
    similarity = torch.einsum("itd,jrd->ijtr", words, regions)
    word_mask = mask[:, None, :, None]
    # A finite fill: a padded word's row is then uniform, not NaN (which would poison the gradient),
    # and it is left out of the sum below.
    normalised = similarity.masked_fill(~word_mask, -1e9).softmax(dim=2)  # over words
    attention = (gamma1 * normalised).softmax(dim=3)  # over regions
    region_gram = regions @ regions.transpose(1, 2)  # (n_images, R, R)
    context_norm = (torch.einsum("ijtr,jrq->ijtq", attention, region_gram) * attention).sum(-1).clamp_min(1e-16).sqrt()
    word_norm = words.norm(dim=-1)[:, None, :]  # (n_captions, 1, T)
    cosine = (attention * similarity).sum(-1) / (word_norm * context_norm).clamp_min(1e-8)
    scores = (gamma2 * cosine).masked_fill(~mask[:, None, :], float("-inf")).logsumexp(dim=-1)
    return scores.T


def damsm_sentence_scores(image_codes: torch.Tensor, sentences: torch.Tensor) -> torch.Tensor:
    """DAMSM's sentence-level scores (n_images, n_captions): cos(image code_j, sentence_i) (AttnGAN sent_loss)."""
    return _cosine(image_codes[:, None], sentences[None])


def damsm_loss(
    *,
    regions: torch.Tensor,
    image_codes: torch.Tensor,
    words: torch.Tensor,
    mask: torch.Tensor,
    sentences: torch.Tensor,
    gamma1: float,
    gamma2: float,
    gamma3: float,
) -> dict[str, torch.Tensor]:
    """DAMSM's loss on a batch of matching pairs (image i, caption i), no class masking (COCO's):

        L = CE_rows(γ3 R_word) + CE_columns(γ3 R_word) + CE_rows(γ3 R_sent) + CE_columns(γ3 R_sent)

    rows: each image picks its caption; columns: each caption picks its image. Returns each term and "total".
    """
    labels = torch.arange(len(regions), device=regions.device)
    word = gamma3 * damsm_word_scores(regions, words, mask, gamma1=gamma1, gamma2=gamma2)
    sentence = gamma3 * damsm_sentence_scores(image_codes, sentences)
    terms = {
        "word_image_to_caption": F.cross_entropy(word, labels),
        "word_caption_to_image": F.cross_entropy(word.T, labels),
        "sentence_image_to_caption": F.cross_entropy(sentence, labels),
        "sentence_caption_to_image": F.cross_entropy(sentence.T, labels),
    }
    return {**terms, "total": sum(terms.values())}
