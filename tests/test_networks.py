"""The VAE's networks (issue 8, parts 5 and 8): the convolutional pair, the conditional VAE (CVAE),
what ``vae.pt`` says about them, and tiny trainings of ``vae=elbo_conv`` and ``vae=cvae``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from catvae.artifacts import ArtifactKey, load_models, read_vae, save_vae
from catvae.core.errors import ArtifactError
from catvae.generators.gaussian import build_generator, generate_images, target_labels
from catvae.models.networks import (
    ConvDecoder,
    ConvEncoder,
    Decoder,
    Encoder,
    NetworkSpec,
    build_networks,
)
from catvae.models.objectives import ELBO
from catvae.models.vae import VAE

SPECS = {
    "mlp": NetworkSpec("mlp", 3, (16,)),
    "conv": NetworkSpec("conv", 3, (8,), (4, 6), 4),
    "conv k3": NetworkSpec("conv", 3, (), (5,), 3),
    "cvae": NetworkSpec("mlp", 3, (16,), num_classes=10),
}


@pytest.mark.parametrize("spec", [SPECS["conv"], SPECS["conv k3"]], ids=["k4 two convs + fc", "k3 one conv"])
def test_conv_networks_shapes_and_one_training_step(spec):
    torch.manual_seed(0)
    vae = VAE(3, ELBO(), list(spec.hidden), 1e-2, arch="conv", channels=list(spec.channels), kernel=spec.kernel)
    assert isinstance(vae.encoder, ConvEncoder) and isinstance(vae.decoder, ConvDecoder)
    images, labels = torch.rand(5, 784), torch.arange(5)
    mean, logvar = vae.encoder(images)
    assert mean.shape == logvar.shape == (5, 3)
    assert vae.decoder(mean).shape == (5, 784)
    decoded = vae.decoder.images(mean, batch_size=2)  # chunked like a large batch
    assert decoded.shape == (5, 784) and float(decoded.min()) >= 0 and float(decoded.max()) <= 1
    # One Adam step on a fixed batch lowers the loss: the gradient reaches every layer.
    optimizer = torch.optim.Adam(vae.parameters(), lr=1e-2)
    before = {name: p.detach().clone() for name, p in vae.named_parameters()}
    torch.manual_seed(1)
    loss = vae(images, labels)["loss"]
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    assert all(not torch.equal(before[name], p) for name, p in vae.named_parameters())
    torch.manual_seed(1)
    assert float(vae(images, labels)["loss"].detach()) < float(loss.detach())


def test_spec_refuses_what_it_cannot_build():
    with pytest.raises(ValueError, match="arch='rnn' is not allowed: one of mlp, conv"):
        NetworkSpec("rnn", 2)
    with pytest.raises(ValueError, match="1 or 2 channel counts, kernel 3 or 4"):
        NetworkSpec("conv", 2, (), (8, 8, 8))


@pytest.mark.parametrize("name", list(SPECS))
def test_vae_file_round_trip_rebuilds_the_same_networks(name, tmp_path):
    torch.manual_seed(0)
    encoder, decoder = build_networks(SPECS[name])
    save_vae(encoder, decoder, tmp_path / "vae.pt")
    encoder2, decoder2 = read_vae(tmp_path / "vae.pt")
    assert type(encoder2) is type(encoder) and type(decoder2) is type(decoder)
    assert encoder2.spec == decoder2.spec == SPECS[name]
    images, labels = torch.rand(4, 784), torch.tensor([0, 3, 7, 9])
    with torch.no_grad():
        assert torch.equal(encoder2(images, labels)[0], encoder(images, labels)[0])
        z = torch.randn(4, 3)
        assert torch.equal(decoder2.images(z, labels), decoder.images(z, labels))


@pytest.mark.parametrize(
    ("arch", "message"),
    [
        ("rnn", "names arch='rnn', which this catvae does not build (it builds mlp, conv)"),
        (None, "holds no 'arch' field naming its networks"),
    ],
)
def test_vae_file_with_unknown_or_missing_arch_is_an_artifact_error(arch, message, tmp_path):
    path = tmp_path / "vae.pt"
    save_vae(*build_networks(SPECS["conv"]), path)
    state = torch.load(path, weights_only=True)
    if arch is None:
        del state["arch"]
    else:
        state["arch"] = arch
    torch.save(state, path)
    with pytest.raises(ArtifactError) as caught:
        read_vae(path, "python -m catvae.train vae=elbo_conv")
    text = str(caught.value)
    assert text.startswith(f"{path}: {message}") and text.endswith(". Make it again with: python -m catvae.train vae=elbo_conv")


def test_vae_file_of_a_conv_vae_with_mlp_weights_names_what_does_not_fit(tmp_path):
    path = tmp_path / "vae.pt"
    save_vae(*build_networks(SPECS["mlp"]), path)
    state = torch.load(path, weights_only=True)
    state["arch"] = "conv"
    torch.save(state, path)
    with pytest.raises(ArtifactError, match="its encoder weights do not fit the network it describes"):
        read_vae(path)


def test_cvae_decoder_depends_on_the_label_and_requires_it():
    torch.manual_seed(0)
    encoder, decoder = Encoder(3, [16], num_classes=10), Decoder(3, [16], num_classes=10)
    z = torch.randn(1, 3).repeat(10, 1)  # one code, every label
    images = decoder.images(z, torch.arange(10))
    distances = torch.cdist(images, images)
    assert float(distances[~torch.eye(10, dtype=torch.bool)].min()) > 0  # ten different images
    # The label enters as a one-hot beside the code: the first layer's columns D..D+L are its weights.
    first = decoder.net[0]
    expected = torch.sigmoid(decoder.net[1:](first.weight[:, :3] @ z[0] + first.bias + first.weight[:, 3 + 7]))
    assert torch.allclose(images[7], expected, atol=1e-6)
    with pytest.raises(ValueError, match="conditional on the class label"):
        decoder(z)
    with pytest.raises(ValueError, match="conditional on the class label"):
        encoder(torch.rand(2, 784))
    # An unconditional decoder ignores labels.
    plain = Decoder(3, [16])
    assert torch.equal(plain.images(z, torch.arange(10)), plain.images(z))


@pytest.mark.slow
def test_train_elbo_conv_publishes_artifacts_under_its_name(make_config, tmp_path, tiny, tiny_judge):
    from catvae.train import train

    cfg = make_config(overrides=[*tiny, "vae=elbo_conv", "logger=none", "latent_dim=2"])
    summary = json.loads(Path(train(cfg)).read_text())
    assert summary["key"] == {"data": "mnist", "vae": "elbo_conv", "latent_dim": 2, "seed": 0}
    folder = tmp_path / "logs/artifacts/mnist/elbo_conv-2/seed0"
    assert Path(summary["artifacts"]["vae.pt"]) == folder / "vae.pt"
    models = load_models(ArtifactKey("mnist", "elbo_conv", 2, 0), tmp_path / "logs/artifacts")
    assert isinstance(models.encoder, ConvEncoder) and isinstance(models.decoder, ConvDecoder)
    assert models.decoder.spec == NetworkSpec("conv", 2, tuple(cfg.vae.hidden), tuple(cfg.vae.channels), cfg.vae.kernel)
    assert 0 < summary["vae_test"]["recon"] < 1000


@pytest.mark.slow
def test_train_cvae_then_generate_a_label(make_config, tmp_path, tiny, tiny_judge):
    from catvae.generate import generate
    from catvae.train import train

    cfg = make_config(overrides=[*tiny, "vae=cvae", "logger=none"])
    summary = json.loads(Path(train(cfg)).read_text())
    assert summary["key"]["vae"] == "cvae" and summary["config"]["vae"]["conditional"] is True
    assert sorted(summary["generator"]["per_label"]) == [str(i) for i in range(10)]
    models = load_models(ArtifactKey("mnist", "cvae", 4, 0), tmp_path / "logs/artifacts")
    assert models.decoder.conditional and models.encoder.spec.num_classes == 10

    out = tmp_path / "sevens.npz"
    generate(make_config("generate", ["vae=cvae", "latent_dim=4", "label=7", "num=6", f"out={out}"]))
    with np.load(out) as saved:
        images, labels = saved["images"], saved["labels"]
    assert labels.tolist() == [7] * 6
    # They are the decoder's images of the generator's codes with label 7, not with another label.
    gen_cfg = make_config("generate", ["vae=cvae", "latent_dim=4"])
    generator = build_generator(gen_cfg.generator)
    expected = generate_images(generator, models.stats, models.decoder, target_labels([7], 6), int(gen_cfg.sample_seed))
    assert np.allclose(images.reshape(6, -1), expected.numpy(), atol=1e-6)
    other = generate_images(generator, models.stats, models.decoder, target_labels([1], 6), int(gen_cfg.sample_seed))
    assert not np.allclose(images.reshape(6, -1), other.numpy(), atol=1e-3)
