"""MirrorGAN (Qiao et al., CVPR 2019, "Learning Text-to-image Generation by Redescription"), beside
XMC-GAN: read from the authors' code (github qiaott/MirrorGAN, on taoxugit/AttnGAN's DAMSM).

    vocabulary.py   STEM's vocabulary and caption ids (AttnGAN's datasets.py)
    stem.py         STEM, the bi-LSTM text encoder, and its vocabulary-fronted TextEncoder twin
    damsm.py        DAMSM's image encoder on a frozen Inception-v3 trunk; the DAMSM folder
    glam.py         GLAM, the cascaded generator with global-local attention, and conditioning augmentation
    discriminator.py  one discriminator per stage (unconditional and conditional logits)
    stream.py       STREAM, the captioner whose redescription loss trains G
    losses.py       the loss terms as pure functions (D, G, KL, caption, DAMSM)
    objective.py    MirrorGANLoss: the D and G phases over the networks
    pretraining.py  DAMSM and STREAM pretraining on cached frozen features
    training.py     MirrorGAN's part of the shared loop (model/training.py)
    sampling.py     MirrorGANTextToImage and the model folder

Configs: model.config.MirrorGANConfig / MirrorGANLossConfig (the presets mirrorgan-256,
mirrorgan-64 and mirrorgan-32), model/mirrorgan/config.py DAMSMConfig / StreamConfig (the pretrained networks).
"""
