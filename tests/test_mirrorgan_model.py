"""MirrorGAN's modules against the authors' code: shapes and masks of each, the loss formulas by hand,
STREAM's gradient reaching G and never the frozen networks, the model folder round trip."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from model.config import MirrorGANConfig, MirrorGANLossConfig, preset
from model.mirrorgan.config import DAMSMConfig, StreamConfig
from model.mirrorgan.discriminator import MirrorGANDiscriminator
from model.mirrorgan.glam import GlobalLocalAttention, MirrorGANGenerator
from model.mirrorgan.losses import (
    damsm_loss,
    damsm_word_scores,
    discriminator_stage_loss,
    generator_stage_loss,
    kl_loss,
)
from model.mirrorgan.objective import MirrorGANLoss
from model.mirrorgan.stem import STEM, STEMTextEncoder, caption_ids
from model.mirrorgan.stream import STREAM
from model.mirrorgan.vocabulary import Vocabulary, tokenize
from model.text_encoder import TextEmbedding

TINY = MirrorGANConfig(base_size=16, stages=2, noise_dim=6, condition_dim=4, g_base=4, d_base=2, text_dim=8)
TINY_DAMSM = DAMSMConfig(embedding_dim=6, text_dim=8, max_words=6, batch_size=4)
CAPTIONS = ["a red circle on the left", "a blue square at the bottom", "two green stars", "a red star on a white sky"]
VOCAB = 17  # ids of Vocabulary.build(CAPTIONS): 16 words and END


def tiny_text(batch: int, *, lengths: list[int], words: int = 5, dim: int = 8, seed: int = 0) -> TextEmbedding:
    g = torch.Generator().manual_seed(seed)
    mask = torch.arange(words)[None] < torch.tensor(lengths)[:, None]
    return TextEmbedding(torch.randn(batch, words, dim, generator=g), mask, torch.randn(batch, dim, generator=g))


# ---------------------------------------------------------------------------------------------
# Vocabulary and STEM


def test_vocabulary_is_lower_cased_word_runs_with_end_as_id_zero_and_unknown_words_dropped():
    assert tokenize("A red-circle, café_2!") == ["a", "red", "circle", "caf_2"]
    vocabulary = Vocabulary.build(CAPTIONS)
    assert vocabulary.words[:3] == ("a", "red", "circle") and len(vocabulary) == len(vocabulary.words) + 1
    ids, length = vocabulary.encode("A RED zebra circle", max_words=6)
    assert (
        ids.tolist() == [1, 2, 3, 0, 0, 0]
        and length == 3
        and vocabulary.decode(ids[:4]) == ["a", "red", "circle", "<end>"]
    )


def test_a_long_caption_keeps_an_order_preserving_subset_the_same_each_time():
    vocabulary = Vocabulary.build(CAPTIONS)
    caption = " ".join(CAPTIONS)
    full = vocabulary.ids(caption)
    ids, length = vocabulary.encode(caption, max_words=6)
    assert length == 6 and np.array_equal(ids, vocabulary.encode(caption, max_words=6)[0])
    positions = [full.index(i) for i in ids]  # ids are distinct enough here to find them in order
    kept = iter(full)
    assert all(any(i == k for k in kept) for i in ids), f"not a subsequence: {ids} of {full} ({positions})"
    other, _ = vocabulary.encode(caption, max_words=6, rng=np.random.default_rng(5))
    assert not np.array_equal(other, ids)  # a training rng draws other subsets


def test_stem_words_sentence_and_mask_match_the_lstm_run_on_each_caption_alone():
    torch.manual_seed(0)
    stem = STEM(vocab_size=12, config=TINY_DAMSM).eval()
    ids = torch.tensor([[3, 4, 5, 0, 0, 0], [7, 8, 9, 10, 11, 2]])
    lengths = torch.tensor([3, 6])
    text = stem(ids, lengths)
    assert text.words.shape == (2, 6, 8) and text.sentence.shape == (2, 8)
    assert text.mask.tolist() == [[True] * 3 + [False] * 3, [True] * 6]
    assert text.words[0, 3:].abs().max() == 0  # nothing past a caption's end
    alone_out, (hidden, _) = stem.rnn(stem.embedding(ids[:1, :3]))
    torch.testing.assert_close(text.words[0, :3], alone_out[0])
    torch.testing.assert_close(text.sentence[0], torch.cat([hidden[0, 0], hidden[1, 0]]))  # forward, backward
    changed = ids.clone()
    changed[0, 3:] = 9  # padding ids do not matter
    torch.testing.assert_close(stem(changed, lengths).sentence, text.sentence)


def test_text_encoder_gives_a_caption_without_known_words_the_end_token():
    vocabulary = Vocabulary.build(CAPTIONS)
    ids, lengths = caption_ids(["zebra xylophone", "two stars"], vocabulary, max_words=6)
    assert lengths.tolist() == [1, 2] and ids[0].tolist() == [0] * 6
    torch.manual_seed(0)
    encoder = STEMTextEncoder(STEM(vocab_size=len(vocabulary), config=TINY_DAMSM), vocabulary)
    assert encoder.known_words("zebra xylophone") == 0 and encoder.known_words("Two zebras") == 1
    text = encoder(["zebra", "a red circle"])
    assert text.mask.sum(1).tolist() == [1, 3] and text.ids.shape == (2, 6)


# ---------------------------------------------------------------------------------------------
# GLAM and the discriminators


def test_authors_configuration_has_their_stages_and_sizes():
    config, loss = preset("mirrorgan-256", text_dim=256)
    assert (config.stage_sizes, config.g_base, config.d_base, config.noise_dim, config.condition_dim) == (
        (64, 128, 256), 32, 64, 100, 100,
    )  # fmt: skip
    assert (config.residual_blocks, loss.stream_weight, loss.kl_weight) == (2, 20.0, 1.0)
    with torch.device("meta"):
        generator, discriminator = MirrorGANGenerator(config), MirrorGANDiscriminator(config)
        out = generator.stages(torch.randn(2, 200), tiny_text(2, lengths=[3, 18], words=18, dim=256))
        features = [stage(image) for stage, image in zip(discriminator.stages, out.images, strict=True)]
    assert [tuple(i.shape) for i in out.images] == [(2, 3, s, s) for s in (64, 128, 256)]
    assert [tuple(a.shape) for a in out.word_attention] == [(2, 18, 64, 64), (2, 18, 128, 128)]
    assert all(f.shape == (2, 512, 4, 4) for f in features)
    # 7.1M / 97.6M: the authors' G_NET with CA and their three D_NETs at text width 256
    assert sum(p.numel() for p in generator.parameters()) == 7_105_392
    assert sum(p.numel() for p in discriminator.parameters()) == 97_596_678


@pytest.mark.parametrize(("name", "sizes"), [("mirrorgan-32", [16, 32]), ("mirrorgan-64", [32, 64])])
def test_cpu_presets_run_for_real_with_one_image_per_stage_in_range(name, sizes):
    config, _ = preset(name, text_dim=256)
    torch.manual_seed(0)
    generator, discriminator = MirrorGANGenerator(config), MirrorGANDiscriminator(config)
    out = generator.stages(torch.randn(3, config.z_dim), tiny_text(3, lengths=[2, 5, 18], words=18, dim=256))
    assert [i.shape[-1] for i in out.images] == sizes and all(i.abs().max() <= 1 for i in out.images)
    assert out.images[-1].std() > 0.01 and out.mu.shape == out.logvar.shape == (3, 100)
    stage = discriminator.stages[1]
    features = stage(out.images[1])
    assert stage.unconditional(features).shape == stage.conditional(features, torch.randn(3, 256)).shape == (3,)


def test_padded_words_change_nothing_and_attention_is_over_real_words_only():
    torch.manual_seed(0)
    generator = MirrorGANGenerator(TINY).eval()
    text = tiny_text(2, lengths=[2, 5])
    z = torch.randn(2, TINY.z_dim)
    out = generator.stages(z, text)
    attention = out.word_attention[0]  # (b, T, H, W)
    torch.testing.assert_close(attention.sum(1), torch.ones(2, 16, 16))
    assert attention[0, 2:].max() == 0
    changed = TextEmbedding(text.words.clone(), text.mask, text.sentence)
    changed.words[0, 2:] = 100.0
    assert torch.equal(generator(z, changed), generator(z, text))
    changed.words[0, 1] += 1.0
    assert not torch.allclose(generator(z, changed)[0], generator(z, text)[0])


def test_sentence_attention_is_a_softmax_over_channels():
    torch.manual_seed(0)
    attention = GlobalLocalAttention(4, 8, 3)
    h, c = torch.randn(2, 4, 5, 5), torch.randn(2, 3)
    out = attention(h, c, torch.randn(2, 6, 8), torch.ones(2, 6, dtype=torch.bool))
    e = attention.sentence_proj(c)[:, :, None, None]
    weights = out.sentence_context / e
    torch.testing.assert_close(weights.sum(1), torch.ones(2, 5, 5))
    assert out.word_context.shape == (2, 4, 5, 5)


def test_conditioning_augmentation_draws_epsilon_from_the_noise():
    torch.manual_seed(0)
    generator = MirrorGANGenerator(TINY).eval()
    text = tiny_text(1, lengths=[3])
    z = torch.randn(1, TINY.z_dim)
    mu, logvar = F.glu(generator.ca.fc(text.sentence), dim=1).split(4, dim=1)
    c, _, _ = generator.ca(text.sentence, z[:, 6:])
    torch.testing.assert_close(c, mu + z[:, 6:] * torch.exp(logvar / 2))
    assert torch.equal(generator(z, text), generator(z, text))  # no hidden randomness
    other = z.clone()
    other[:, 6:] += 1.0  # another epsilon, same noise: another image
    assert not torch.equal(generator(other, text), generator(z, text))


def test_batch_norm_scales_and_orthogonal_weights_follow_the_authors_init():
    torch.manual_seed(0)
    generator = MirrorGANGenerator(MirrorGANConfig(base_size=16, stages=1, g_base=8, text_dim=8))
    bn = generator.init_stage.fc[1]
    assert abs(bn.weight.mean() - 1) < 0.02 and bn.bias.abs().max() == 0
    weight = generator.init_stage.fc[0].weight  # (out, in), out > in: orthonormal columns
    torch.testing.assert_close(weight.T @ weight, torch.eye(weight.shape[1]), atol=1e-5, rtol=0)


# ---------------------------------------------------------------------------------------------
# Loss formulas by hand


def _bce(logit: float, target: float) -> float:
    p = 1 / (1 + math.exp(-logit))
    return -(target * math.log(p) + (1 - target) * math.log(1 - p))


def test_discriminator_and_generator_stage_losses_are_the_authors_weighted_bces():
    t = torch.tensor
    logits = {
        "real_unconditional": t([0.5, -1.0]),
        "real_conditional": t([2.0, 0.1]),
        "fake_unconditional": t([-0.3, 0.7]),
        "fake_conditional": t([1.5, -2.0]),
        "mismatched_conditional": t([0.2]),
    }
    mean = lambda values, target: sum(_bce(v, target) for v in values) / len(values)  # noqa: E731
    expected = (mean([0.5, -1.0], 1) + mean([2.0, 0.1], 1)) / 2 + (
        mean([-0.3, 0.7], 0) + mean([1.5, -2.0], 0) + mean([0.2], 0)
    ) / 3
    assert discriminator_stage_loss(**logits).item() == pytest.approx(expected, rel=1e-6)
    g = generator_stage_loss(fake_unconditional=t([-0.3, 0.7]), fake_conditional=t([1.5, -2.0]))
    assert g.item() == pytest.approx(mean([-0.3, 0.7], 1) + mean([1.5, -2.0], 1), rel=1e-6)


def test_kl_term_is_the_mean_kl_to_a_standard_normal():
    mu, logvar = torch.tensor([[0.5, -1.0]]), torch.tensor([[0.2, -0.4]])
    per_element = [0.5 * (m**2 + math.exp(v) - 1 - v) for m, v in zip([0.5, -1.0], [0.2, -0.4], strict=True)]
    assert kl_loss(mu, logvar).item() == pytest.approx(sum(per_element) / 2, rel=1e-6)


def _authors_words_loss(regions, words, lengths, gamma1, gamma2, gamma3):
    """AttnGAN's words_loss + func_attention, caption by caption with plain loops (regions (b, R, d))."""
    b = len(regions)
    similarities = torch.zeros(b, b)
    for i in range(b):
        word = words[i, : lengths[i]]  # (n, d)
        for j in range(b):
            attn = (regions[j] @ word.T).softmax(dim=1)  # (R, n): over words, Eq. 8
            attn = (gamma1 * attn.T).softmax(dim=1)  # (n, R): over regions, Eq. 9
            context = attn @ regions[j]  # (n, d)
            cos = torch.stack([F.cosine_similarity(word[t], context[t], dim=0) for t in range(len(word))])
            similarities[j, i] = torch.log(torch.exp(gamma2 * cos).sum())
    similarities = similarities * gamma3
    labels = torch.arange(b)
    return F.cross_entropy(similarities, labels) + F.cross_entropy(similarities.T, labels)


def test_damsm_word_loss_matches_the_authors_loop_and_a_single_region_closed_form():
    torch.manual_seed(0)
    regions, words = torch.randn(3, 7, 5), torch.randn(3, 4, 5)
    lengths = [2, 4, 3]
    mask = torch.arange(4)[None] < torch.tensor(lengths)[:, None]
    loss = damsm_loss(
        regions=regions, image_codes=torch.randn(3, 5), words=words, mask=mask, sentences=torch.randn(3, 5),
        gamma1=4.0, gamma2=5.0, gamma3=10.0,
    )  # fmt: skip
    word_terms = loss["word_image_to_caption"] + loss["word_caption_to_image"]
    torch.testing.assert_close(word_terms, _authors_words_loss(regions, words, lengths, 4.0, 5.0, 10.0))
    # One region: every word's context is that region, so R = log Σ_t exp(γ2 cos(w_t, v)).
    v, w = torch.tensor([[[1.0, 0.0]]]), torch.tensor([[[1.0, 1.0], [0.0, 2.0], [5.0, 5.0]]])
    score = damsm_word_scores(v, w, torch.tensor([[True, True, False]]), gamma1=4.0, gamma2=5.0)
    assert score.item() == pytest.approx(math.log(math.exp(5 * 2**-0.5) + math.exp(0.0)), rel=1e-6)


def test_damsm_sentence_loss_is_cross_entropy_of_scaled_cosines_both_ways():
    codes, sentences = torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([[2.0, 0.0], [1.0, 1.0]])
    loss = damsm_loss(
        regions=torch.randn(2, 3, 2), image_codes=codes, words=torch.randn(2, 2, 2),
        mask=torch.ones(2, 2, dtype=torch.bool), sentences=sentences, gamma1=4.0, gamma2=5.0, gamma3=10.0,
    )  # fmt: skip
    c = 2**-0.5
    rows = [[1.0, c], [0.0, c]]  # cos(image j, sentence i)
    row_loss = (-math.log(math.exp(10) / (math.exp(10) + math.exp(10 * c)))
                - math.log(math.exp(10 * c) / (math.exp(0) + math.exp(10 * c)))) / 2  # fmt: skip
    column_loss = (-math.log(math.exp(10) / (math.exp(10) + math.exp(0)))
                   - math.log(math.exp(10 * c) / (math.exp(10 * c) + math.exp(10 * c)))) / 2  # fmt: skip
    assert rows[0][0] == 1.0
    assert loss["sentence_image_to_caption"].item() == pytest.approx(row_loss, rel=1e-5)
    assert loss["sentence_caption_to_image"].item() == pytest.approx(column_loss, rel=1e-5)


# ---------------------------------------------------------------------------------------------
# STREAM and the objective


@pytest.fixture(scope="module")
def tiny_stream() -> STREAM:
    torch.manual_seed(0)
    stream = STREAM(StreamConfig(vgg_layer="block1_pool", input_size=16, embed_dim=6, hidden_dim=10), vocab_size=VOCAB)
    return stream.eval().requires_grad_(False)


def test_stream_decoder_predicts_each_caption_word_from_the_image_and_the_words_before(tiny_stream):
    ids, lengths = torch.tensor([[3, 4, 5, 0], [6, 7, 8, 9]]), torch.tensor([3, 4])
    logits, targets = tiny_stream.decoder(torch.randn(2, 6), ids, lengths)
    assert logits.shape == (7, VOCAB) and sorted(targets.tolist()) == [3, 4, 5, 6, 7, 8, 9]
    features = torch.randn(1, 6)
    alone, _ = tiny_stream.decoder(features, ids[:1], lengths[:1])
    inputs = torch.cat([features[:, None], tiny_stream.decoder.embed(ids[:1, :2])], dim=1)  # [feature, w1, w2]
    hidden, _ = tiny_stream.decoder.lstm(inputs)
    torch.testing.assert_close(alone, tiny_stream.decoder.linear(hidden[0]))


def _tiny_networks(tiny_stream, **loss):
    torch.manual_seed(0)
    generator, discriminator = MirrorGANGenerator(TINY), MirrorGANDiscriminator(TINY)
    objective = MirrorGANLoss(
        generator=generator, discriminator=discriminator, stream=tiny_stream, config=MirrorGANLossConfig(**loss)
    )
    vocabulary = Vocabulary.build(CAPTIONS)
    stem = STEMTextEncoder(STEM(vocab_size=VOCAB, config=TINY_DAMSM), vocabulary)
    return generator, discriminator, objective, stem(CAPTIONS)


def test_streams_gradient_reaches_the_generator_and_never_the_frozen_networks(tiny_stream):
    generator, discriminator, objective, text = _tiny_networks(tiny_stream)
    real, z = torch.rand(4, 3, 32, 32) * 2 - 1, torch.randn(4, TINY.z_dim)
    loss_d, terms_d = objective.discriminator_loss(real=real, text=text, z=z)
    loss_d.backward()
    assert all(p.grad is None for p in generator.parameters())  # D saw detached fakes
    assert {"d_stage0", "d_stage1", "d_total"} <= set(terms_d)
    discriminator.zero_grad(set_to_none=True)
    loss_g, terms_g = objective.generator_loss(real=real, text=text, z=z)
    assert loss_g.item() == pytest.approx(
        terms_g["g_stage0"] + terms_g["g_stage1"] + 20.0 * terms_g["g_stream"] + terms_g["g_kl"], rel=1e-5
    )
    loss_g.backward()
    assert all(p.grad is None for p in discriminator.parameters())  # frozen in the G phase
    assert all(p.grad is None for p in tiny_stream.parameters()) and not tiny_stream.training
    # STREAM's term alone moves the last stage's image head, and through it the whole generator
    generator.zero_grad(set_to_none=True)
    objective.discriminator_loss(real=real, text=text, z=z)
    fakes = objective._pending[0][1]
    tiny_stream.loss(fakes.images[-1], text.ids, text.lengths).backward()
    assert generator.to_image[1][0].weight.grad.abs().sum() > 0 and generator.ca.fc.weight.grad.abs().sum() > 0
    assert generator.to_image[0][0].weight.grad is None  # stage 0's image is not what STREAM reads
    assert all(p.grad is None for p in tiny_stream.parameters())


def test_generator_phase_reuses_the_discriminator_phases_fakes_and_checks_the_order(tiny_stream):
    generator, _, objective, text = _tiny_networks(tiny_stream, stream_weight=0.0)
    real, z = torch.rand(4, 3, 32, 32) * 2 - 1, torch.randn(4, TINY.z_dim)
    with pytest.raises(RuntimeError, match="must follow the discriminator phase"):
        objective.generator_loss(real=real, text=text)
    objective.discriminator_loss(real=real, text=text, z=z)
    _, terms = objective.generator_loss(real=real, text=text, z=torch.randn(4, TINY.z_dim))
    assert "g_stream" not in terms and not objective._pending
    trainable = STREAM(StreamConfig(vgg_layer="block1_pool", input_size=16), vocab_size=12)
    with pytest.raises(ValueError, match="STREAM must be frozen"):
        MirrorGANLoss(generator=generator, discriminator=None, stream=trainable, config=MirrorGANLossConfig())


# ---------------------------------------------------------------------------------------------
# The model folder


def test_model_folder_round_trips_and_records_its_architecture(tmp_path):
    import json

    from model.mirrorgan.sampling import MirrorGANTextToImage
    from model.sampling import TextToImage

    vocabulary = Vocabulary.build(CAPTIONS)
    torch.manual_seed(0)
    encoder = STEMTextEncoder(STEM(vocab_size=len(vocabulary), config=TINY_DAMSM), vocabulary)
    pipeline = MirrorGANTextToImage(text_encoder=encoder, generator=MirrorGANGenerator(TINY))
    pipeline.save_pretrained(tmp_path / "model", provenance={"run": "x"})
    values = json.loads((tmp_path / "model" / "config.json").read_text())
    assert values["architecture"] == "mirrorgan" and values["text_encoder"]["kind"] == "stem"
    assert {p.name for p in (tmp_path / "model").iterdir()} == {
        "config.json", "generator.safetensors", "text_encoder.safetensors", "vocabulary.json",
    }  # fmt: skip
    loaded = TextToImage.from_pretrained(tmp_path / "model")
    assert isinstance(loaded, MirrorGANTextToImage) and loaded.provenance == {"run": "x"}
    images = loaded(["a red circle", "two stars"], seed=3, images_per_prompt=2)
    assert images.shape == (4, 32, 32, 3) and images.dtype == np.uint8
    assert np.array_equal(images, pipeline(["a red circle", "two stars"], seed=3, images_per_prompt=2))
    assert loaded.prompt_problem("zebra") and loaded.prompt_problem("a zebra") is None
