"""The networks of Figures 2 and 4: shapes, dropout, and the VAE's bound against a hand
computation."""

from __future__ import annotations

import math

import pytest
import torch

from adamrepro.errors import ConfigError
from adamrepro.models import MultilayerNetwork, VariationalAutoencoder, build_model
from adamrepro.training import population
from conftest import hydra_config


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def test_the_multilayer_network_has_the_papers_shapes():
    net = MultilayerNetwork(784, 10, seeds=[0, 0, 1])
    shapes = [tuple(p.shape) for p in net.parameters()]
    assert shapes == [(3, 784, 1000), (3, 1000), (3, 1000, 1000), (3, 1000), (3, 1000, 10), (3, 10)]
    assert (
        sum(p[0].numel() for p in net.parameters())
        == 784 * 1000 + 1000 + 1000 * 1000 + 1000 + 10010
    )
    x = torch.rand(5, 784)
    assert net(x).shape == (3, 5, 10)
    assert net(torch.rand(3, 5, 784)).shape == (3, 5, 10)  # one minibatch per seed row
    # members with the same seed start equal, another seed differs
    assert torch.equal(net.layers[1].weight[0], net.layers[1].weight[1])
    assert not torch.equal(net.layers[1].weight[0], net.layers[1].weight[2])


def test_dropout_acts_in_training_only_and_draws_a_mask_per_member():
    net = MultilayerNetwork(20, 3, seeds=[0, 0], hidden=(50, 50))
    plain = MultilayerNetwork(
        20, 3, seeds=[0, 0], hidden=(50, 50), input_dropout=0, hidden_dropout=0
    )
    plain.load_state_dict(net.state_dict())
    x = torch.rand(8, 20)
    net.eval()
    assert torch.equal(net(x), plain(x))  # evaluation: no dropout, no rescaling
    net.train()
    out = net(x)
    assert not torch.allclose(out, plain(x))
    assert not torch.allclose(out[0], out[1])  # same weights, independent masks
    assert not torch.allclose(out, net(x))  # a fresh mask each call
    # the expected activation is kept: inverted dropout scales by 1/(1-p)
    wide = MultilayerNetwork(4000, 2, seeds=[0], hidden=(1,), input_dropout=0.2)
    with torch.no_grad():
        wide.layers[0].weight.fill_(1.0)
        wide.layers[0].bias.zero_()
    wide.hidden_dropout.p = 0.0
    ones = torch.ones(1, 4000)
    h = torch.relu(wide.layers[0](wide.input_dropout(ones.expand(1, 1, 4000))))
    assert h.item() == pytest.approx(4000, rel=0.05)


@pytest.mark.parametrize("p", [0.2, 0.5])
def test_dropout_drops_with_probability_p_and_keeps_the_expectation(p):
    from adamrepro.errors import ConfigError
    from adamrepro.models.layers import Dropout

    torch.manual_seed(0)
    layer = Dropout(p)
    x = torch.full((400_000,), 3.0, requires_grad=True)
    y = layer(x)
    dropped = (y == 0).double().mean().item()
    assert dropped == pytest.approx(p, abs=4 * math.sqrt(p * (1 - p) / x.numel()))
    assert torch.equal(y[y != 0], torch.full_like(y[y != 0], 3.0 / (1 - p)))  # exact scale
    y.sum().backward()  # the gradient is the mask: 0 where dropped, 1/(1-p) where kept
    assert torch.equal(x.grad, (y != 0).float() / (1 - p))
    assert torch.equal(layer.eval()(x), x) and torch.equal(Dropout(0.0)(x), x)
    with pytest.raises(ConfigError, match="a dropout rate must be in"):
        Dropout(1.0)


def test_the_vae_bound_equals_a_hand_computation_on_a_tiny_case():
    vae = VariationalAutoencoder(3, seeds=[0], hidden=2, latent=1).double()
    x = torch.tensor([[0.0, 1.0, 0.25]], dtype=torch.float64)
    noise = torch.tensor([[[0.7]]], dtype=torch.float64)
    got = vae.negative_elbo(x, noise).item()

    def softplus(a: float) -> float:
        return math.log1p(math.exp(a))

    def affine(layer, inputs: list[float]) -> list[float]:
        w, b = layer.weight[0].tolist(), layer.bias[0].tolist()
        return [sum(inputs[i] * w[i][o] for i in range(len(inputs))) + b[o] for o in range(len(b))]

    pixels = x[0].tolist()
    h = [softplus(a) for a in affine(vae.encoder_hidden, pixels)]
    mu, log_var = affine(vae.encoder_mean, h)[0], affine(vae.encoder_log_var, h)[0]
    z = mu + math.exp(0.5 * log_var) * 0.7
    hd = [softplus(a) for a in affine(vae.decoder_hidden, [z])]
    p = [1 / (1 + math.exp(-a)) for a in affine(vae.decoder_logits, hd)]
    log_likelihood = sum(
        xi * math.log(pi) + (1 - xi) * math.log(1 - pi) for xi, pi in zip(pixels, p, strict=True)
    )
    kl = -0.5 * (1 + log_var - mu**2 - math.exp(log_var))
    assert got == pytest.approx(-log_likelihood + kl, rel=1e-12)


def test_the_vae_is_a_population_with_one_bound_per_member():
    vae = VariationalAutoencoder(784, seeds=[0, 0, 1])
    x = torch.rand(6, 784)
    assert vae.negative_elbo(x).shape == (3, 6)
    assert vae.cost(x).shape == (3,)
    noise = torch.zeros(3, 6, 50)
    bound = vae.negative_elbo(x, noise)
    assert torch.equal(bound[0], bound[1]) and not torch.equal(bound[0], bound[2])
    # an untrained decoder predicts p ~ 1/2 per pixel: about 784 ln 2 nats
    assert 400 < bound.mean().item() < 800
    result = vae.evaluate(x, None, batch_size=4)
    assert result["cost"].shape == (3,) and torch.isnan(result["accuracy"]).all()


def test_the_vae_can_start_as_kingma_and_welling_initialise():
    """init_normal=s: every weight and bias N(0, s^2), each member from its seed; a record
    older than the setting counts at its default (torch's initialisation)."""
    from adamrepro.records import differences, run_identity

    vae = VariationalAutoencoder(784, seeds=[0, 0, 1], init_normal=0.01)
    for name, parameter in vae.named_parameters():
        assert parameter.std().item() == pytest.approx(0.01, rel=0.1), name
        assert abs(parameter.mean().item()) < 3e-3, name
    assert torch.equal(vae.decoder_logits.bias[0], vae.decoder_logits.bias[1])
    assert not torch.equal(vae.decoder_logits.bias[0], vae.decoder_logits.bias[2])
    default = VariationalAutoencoder(784, seeds=[0])
    assert default.encoder_hidden.weight.abs().max().item() <= 1 / 28  # uniform +-1/sqrt(784)
    old = {"model": {"name": "vae", "hidden": 500, "latent": 50}}
    assert (
        differences(
            run_identity(old), run_identity({"model": {**old["model"], "init_normal": None}})
        )
        == []
    )
    assert differences(
        run_identity(old), run_identity({"model": {**old["model"], "init_normal": 0.01}})
    ) == ["model.init_normal (None vs 0.01)"]


def test_the_cnn_can_start_from_a_gaussian_of_a_given_deviation():
    """init_normal=s: every weight and bias of the CNN N(0, s^2) (convolutions too), each
    member from its seed, each layer its own numbers; the network still computes."""
    from adamrepro.models.classifier import ConvolutionalNetwork

    def cnn(seeds: list[int], init_normal: float | None) -> ConvolutionalNetwork:
        return ConvolutionalNetwork(
            (3, 8, 8), 10, seeds, channels=[8, 8, 16], hidden=64, init_normal=init_normal
        )

    net = cnn([0, 0, 1], 0.01)
    for name, parameter in net.named_parameters():
        if parameter[0].numel() >= 64:  # the deviation of a few numbers is not 0.01
            assert parameter.std().item() == pytest.approx(0.01, rel=0.2), name
        assert parameter.abs().max().item() < 0.01 * 6, name
        assert torch.equal(parameter[0], parameter[1]), name
        assert not torch.equal(parameter[0], parameter[2]), name
    assert not torch.equal(net.convs[1].weight[0, 0], net.convs[2].weight[0, 0, :8])
    assert cnn([0], None).convs[0].weight.abs().max().item() > 0.1  # torch's: +-1/sqrt(75)
    logits = net(torch.randn(5, 3, 8, 8))
    assert logits.shape == (3, 5, 10) and torch.isfinite(logits).all()
    with pytest.raises(ConfigError, match="model.init_normal"):
        cnn([0], -1.0)


def test_the_figure_4_grid_expands_to_108_members_over_two_runs():
    members = []
    for bias_correction in ("true", "false"):
        cfg = hydra_config(
            "experiment=mnist_vae",
            "sweep=fig4_vae_bias_correction",
            f"optimizer.bias_correction={bias_correction}",
        )
        members += population(cfg)
    assert len(members) == 2 * 2 * 3 * 9 == 108
    points = {(m["beta1"], m["beta2"], m["stepsize"], m["bias_correction"]) for m in members}
    assert len(points) == 108
    log10_stepsizes = sorted(math.log10(p[2]) for p in points)
    assert log10_stepsizes[0] == -5 and log10_stepsizes[-1] == -1
    assert len({round(2 * s) for s in log10_stepsizes}) == 9  # half-decade steps


@pytest.mark.parametrize("name", ["mlp", "vae"])
def test_build_model_knows_the_new_models(name, mnist_root):
    from adamrepro.data import load_mnist

    data = load_mnist(mnist_root, download=False, verify=False)
    model = build_model({"name": name, "hidden": [30] if name == "mlp" else 30}, data, [0])
    assert model.members == 1


def test_a_gaussian_initialisation_has_the_stated_scale_and_follows_the_seeds():
    from adamrepro.errors import ConfigError

    net = MultilayerNetwork(
        400, 10, seeds=[0, 0, 1], hidden=[300, 200], input_dropout=0, hidden_dropout=0, init_std=1.6
    )
    for layer in net.layers:
        fan_in = layer.weight.shape[1]
        assert layer.weight[0].std().item() == pytest.approx(1.6 / math.sqrt(fan_in), rel=0.05)
        std_of_mean = 1.6 / math.sqrt(fan_in) / math.sqrt(layer.weight[0].numel())
        assert abs(layer.weight[0].mean().item()) < 4 * std_of_mean
        assert torch.equal(layer.weight[0], layer.weight[1])  # the same seed, the same start
        assert not torch.equal(layer.weight[0], layer.weight[2])
        assert not layer.bias.any()
    again = MultilayerNetwork(400, 10, seeds=[1], hidden=[300, 200], init_std=1.6)
    assert torch.equal(again.layers[1].weight[0], net.layers[1].weight[2])
    zero = MultilayerNetwork(400, 10, seeds=[1], hidden=[300, 200], init_std=1.6, zero_output=True)
    assert torch.equal(zero.layers[0].weight, again.layers[0].weight)
    assert not zero.layers[-1].weight.any() and not zero.layers[-1].bias.any()
    with pytest.raises(ConfigError, match="model.init_std must be a number > 0"):
        MultilayerNetwork(400, 10, seeds=[0], init_std=-1.0)


def test_the_multilayer_network_is_relu_layers_in_order_and_drops_its_input_alone():
    """Hidden layers of different widths, computed by hand (every layer, in order), and input
    dropout acting by itself when the hidden layers have none."""
    net = MultilayerNetwork(6, 3, seeds=[0], hidden=(7, 5), input_dropout=0.5, hidden_dropout=0)
    x = torch.rand(4, 6)
    h = x
    for layer in net.layers[:-1]:
        h = torch.relu(h @ layer.weight[0] + layer.bias[0])
    expected = h @ net.layers[-1].weight[0] + net.layers[-1].bias[0]
    net.eval()
    assert torch.allclose(net(x)[0], expected, atol=1e-6)
    net.train()
    torch.manual_seed(0)
    dropped = net(x)
    assert not torch.allclose(dropped[0], expected)


def test_every_layer_draws_its_own_numbers_within_torchs_bounds():
    """Each layer of a network is seeded by (seed, its own salt): no two layers share a stream
    (they would start from copies of the same numbers). Every weight lies within torch's
    default bound 1/sqrt(fan_in), fan_in = in_channels x kernel^2 for a convolution, and
    reaches close to it."""
    from adamrepro.models.classifier import ConvolutionalNetwork
    from adamrepro.models.layers import MemberConv2d, MemberLinear
    from adamrepro.models.vae import VariationalAutoencoder

    networks = {
        "mlp": MultilayerNetwork(20, 10, seeds=[0], hidden=[16, 16]),
        "cnn": ConvolutionalNetwork((3, 8, 8), 10, seeds=[0], channels=[4, 4, 8], hidden=16),
        "vae": VariationalAutoencoder(20, seeds=[0], hidden=12, latent=3),
    }
    for name, net in networks.items():
        layers = [m for m in net.modules() if isinstance(m, (MemberLinear, MemberConv2d))]
        assert len(layers) >= 3
        firsts = []  # each layer's first draws, as uniform numbers in [-1, 1]
        for layer in layers:
            w = layer.weight.detach()
            fan_in = math.prod(w.shape[2:]) if w.dim() == 5 else w.shape[1]
            bound = 1 / math.sqrt(fan_in)
            assert float(w.abs().max()) <= bound and float(w.abs().max()) > 0.8 * bound, name
            firsts.append((w.flatten()[:8] / bound).tolist())
        for i in range(len(firsts)):
            for j in range(i):
                assert firsts[i] != pytest.approx(firsts[j], rel=1e-4), (name, i, j)
    conv = networks["cnn"].convs[1]
    assert conv.weight.shape[2:] == (4, 5, 5)  # 4 channels in, 5 x 5: fan_in 100
    with_dropout = ConvolutionalNetwork(
        (3, 8, 8), 10, seeds=[0], channels=[4, 4, 8], hidden=16, dropout=True
    )
    assert with_dropout.input_dropout.p == 0.2 and networks["cnn"].input_dropout.p == 0.0
    assert networks["cnn"].weight_decay == networks["mlp"].weight_decay == 0.0  # the defaults


def test_the_penalty_is_summed_on_the_parameters_device():
    """The meta device stands in for a GPU: the (G,) penalty is made where the weights are."""
    from adamrepro.models import LogisticRegression

    model = LogisticRegression(4, 3, seeds=[0, 1], weight_decay=1e-4).to("meta")
    penalty = model.penalty()
    assert penalty.device.type == "meta" and penalty.shape == (2,)


def test_one_output_gives_no_accuracy_when_none_is_asked_for():
    from adamrepro.models import LogisticRegression

    model = LogisticRegression(5, 1, seeds=[0, 1])  # the log-odds of label 1
    x = torch.eye(5)[:3]
    y = torch.tensor([0, 1, 1])
    cost, accuracy = model.losses(x, y, accuracy=False)
    assert cost.shape == (2,) and accuracy is None
    assert model.losses(x, y)[1].shape == (2,)


def test_each_member_reads_its_own_row_of_a_stacked_input_without_a_copy():
    from adamrepro.models.layers import per_member

    stacked = torch.randn(3, 4, 5)  # one row of examples per member
    assert per_member(stacked, 3, example_dims=1).data_ptr() == stacked.data_ptr()
    one_row = torch.randn(1, 3, 5)  # one row read by 3 members, 3 examples in it
    assert torch.equal(per_member(one_row, 3, example_dims=1), one_row.expand(3, 3, 5))
    two_rows = torch.randn(2, 4, 5)  # member g reads row g % 2
    assert torch.equal(per_member(two_rows, 4, example_dims=1)[3], two_rows[1])
