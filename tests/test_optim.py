"""Our optimizers against torch.optim (where the formulas agree) and against hand-computed
steps of the paper's algorithms (where they do not)."""

from __future__ import annotations

import math

import pytest
import torch

from adamrepro.optim import (
    SGD,
    AdaDelta,
    AdaGrad,
    Adam,
    AdaMax,
    ConfigError,
    RMSProp,
    build_optimizer,
)


@pytest.fixture(autouse=True)
def float64():
    """Every test here runs in float64 (restored afterwards: other modules use float32)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def _problem(seed: int = 0, members: int | None = None):
    """A random smooth non-quadratic loss; with `members`, one independent copy per member."""
    g = torch.Generator().manual_seed(seed)
    shape = (members, 7, 5) if members else (7, 5)
    a = torch.randn(11, 7, generator=g)
    b = torch.randn(11, 5, generator=g)
    x0 = torch.randn(*shape, generator=g)

    def loss(x: torch.Tensor) -> torch.Tensor:
        r = a @ x - b
        return (r**2).sum() + 0.5 * torch.cos(x).sum()

    return x0, loss


def _run(make_opt, steps: int = 50, x0=None, loss=None, lr_at=None) -> list[torch.Tensor]:
    if x0 is None:
        x0, loss = _problem()
    x = x0.clone().requires_grad_(True)
    opt = make_opt([x])
    path = []
    for t in range(1, steps + 1):
        if lr_at is not None:
            for group in opt.param_groups:
                group["lr" if "lr" in group else "stepsize"] = lr_at(t)
        opt.zero_grad()
        loss(x).backward()
        opt.step()
        path.append(x.detach().clone())
    return path


def _assert_same_path(ours, theirs, tol=1e-12):
    for t, (a, b) in enumerate(zip(ours, theirs, strict=True), start=1):
        assert torch.allclose(a, b, rtol=0, atol=tol), f"step {t}: max diff {(a - b).abs().max()}"


AGREEING = [
    ("sgd", lambda p: SGD(p, stepsize=0.01), lambda p: torch.optim.SGD(p, lr=0.01)),
    (
        "momentum",
        lambda p: SGD(p, stepsize=0.01, momentum=0.9),
        lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9),
    ),
    (
        "nesterov",
        lambda p: SGD(p, stepsize=0.01, momentum=0.9, nesterov=True),
        lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9, nesterov=True),
    ),
    ("adagrad", lambda p: AdaGrad(p, stepsize=0.1), lambda p: torch.optim.Adagrad(p, lr=0.1)),
    (
        "adagrad-s0",
        lambda p: AdaGrad(p, stepsize=0.1, initial_accumulator=0.1, eps=1e-6),
        lambda p: torch.optim.Adagrad(p, lr=0.1, initial_accumulator_value=0.1, eps=1e-6),
    ),
    (
        "rmsprop",
        lambda p: RMSProp(p, stepsize=0.01, beta2=0.99),
        lambda p: torch.optim.RMSprop(p, lr=0.01, alpha=0.99, eps=1e-8),
    ),
    (
        "rmsprop-momentum",
        lambda p: RMSProp(p, stepsize=0.01, beta2=0.9, momentum=0.9),
        lambda p: torch.optim.RMSprop(p, lr=0.01, alpha=0.9, eps=1e-8, momentum=0.9),
    ),
    (
        "adadelta",
        lambda p: AdaDelta(p, stepsize=1.0, rho=0.9, eps=1e-6),
        lambda p: torch.optim.Adadelta(p, lr=1.0, rho=0.9, eps=1e-6),
    ),
    (
        "adam",
        lambda p: Adam(p, stepsize=0.01),
        lambda p: torch.optim.Adam(p, lr=0.01, foreach=False),
    ),
    (
        "adam-foreach",
        lambda p: Adam(p, stepsize=0.01, beta1=0.5, beta2=0.99, eps=1e-6),
        lambda p: torch.optim.Adam(p, lr=0.01, betas=(0.5, 0.99), eps=1e-6, foreach=True),
    ),
    (
        "adamax-torch-eps",
        lambda p: AdaMax(p, stepsize=0.01, eps=1e-8),
        lambda p: torch.optim.Adamax(p, lr=0.01, eps=1e-8),
    ),
    (
        "amsgrad",
        lambda p: Adam(p, stepsize=0.01, beta2=0.99, amsgrad=True),
        lambda p: torch.optim.Adam(p, lr=0.01, betas=(0.9, 0.99), amsgrad=True, foreach=False),
    ),
]


@pytest.mark.parametrize("name,ours,theirs", AGREEING, ids=[c[0] for c in AGREEING])
def test_equal_to_torch_optim_over_50_steps(name, ours, theirs):
    _assert_same_path(_run(ours), _run(theirs))


@pytest.mark.parametrize("nesterov", [False, True])
def test_torch_momentum_form_equals_torch_under_a_stepsize_decay(nesterov):
    decay = lambda t: 0.01 / math.sqrt(t)  # noqa: E731
    ours = _run(
        lambda p: SGD(p, momentum=0.9, nesterov=nesterov, torch_momentum_form=True), lr_at=decay
    )
    theirs = _run(
        lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9, nesterov=nesterov), lr_at=decay
    )
    _assert_same_path(ours, theirs)


def test_paper_nesterov_is_sutskever_lookahead_under_a_stepsize_decay():
    """v_t = mu v - a_t grad(theta + mu v); theta += v_t. Our parameters are theta + mu v."""
    x0, loss = _problem()
    mu, decay = 0.9, lambda t: 0.01 / math.sqrt(t)  # noqa: E731
    ours = _run(lambda p: SGD(p, momentum=mu, nesterov=True), x0=x0, loss=loss, lr_at=decay)
    theirs = _run(
        lambda p: torch.optim.SGD(p, lr=0.01, momentum=mu, nesterov=True),
        x0=x0,
        loss=loss,
        lr_at=decay,
    )
    theta, v = x0.clone(), torch.zeros_like(x0)
    for t in range(1, 51):
        look = (theta + mu * v).requires_grad_(True)
        (grad,) = torch.autograd.grad(loss(look), look)
        v = mu * v - decay(t) * grad
        theta = theta + v
        assert torch.allclose(ours[t - 1], theta + mu * v, rtol=0, atol=1e-12)
    assert (ours[-1] - theirs[-1]).abs().max() > 1e-6  # the two forms really differ here


def _scalar_run(opt_cls, grads, **hp):
    x = torch.zeros(len(grads[0]), requires_grad=True)
    opt = opt_cls([x], **hp)
    out = []
    for g in grads:
        x.grad = torch.tensor(g)
        opt.step()
        out.append(x.detach().clone().tolist())
    return out, opt, x


def test_adam_algorithm_1_by_hand():
    a, b1, b2, eps = 0.1, 0.9, 0.999, 1e-8
    grads = [[0.5, -2.0], [1.5, 0.0], [-1.0, 3.0]]
    ours, _, _ = _scalar_run(Adam, grads, stepsize=a, beta1=b1, beta2=b2, eps=eps)
    theta, m, v = [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]
    for t, g in enumerate(grads, start=1):
        for i in range(2):
            m[i] = b1 * m[i] + (1 - b1) * g[i]
            v[i] = b2 * v[i] + (1 - b2) * g[i] ** 2
            mhat, vhat = m[i] / (1 - b1**t), v[i] / (1 - b2**t)
            theta[i] -= a * mhat / (math.sqrt(vhat) + eps)
        assert ours[t - 1] == pytest.approx(theta, abs=1e-14)
    # the first step of Adam has magnitude alpha whatever the gradient's scale
    assert abs(ours[0][0]) == pytest.approx(a, rel=1e-6)


def test_adam_without_bias_correction_is_rmsprop_with_momentum():
    a, b1, b2 = 0.1, 0.9, 0.999
    ours, _, _ = _scalar_run(
        Adam, [[0.5]], stepsize=a, beta1=b1, beta2=b2, eps=0.0, bias_correction=False
    )
    # m_1 = 0.05, v_1 = 0.00025: the step is alpha (1-b1)/sqrt(1-b2) = 0.316..., not alpha
    assert ours[0][0] == pytest.approx(-a * (1 - b1) * 0.5 / math.sqrt((1 - b2) * 0.25), rel=1e-12)


def test_adamax_algorithm_2_by_hand_without_eps():
    a, b1, b2 = 0.002, 0.9, 0.999
    grads = [[0.5, 0.0], [-2.0, 0.0], [1.0, 4.0]]
    ours, _, _ = _scalar_run(AdaMax, grads, stepsize=a, beta1=b1, beta2=b2)
    theta, m, u = [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]
    for t, g in enumerate(grads, start=1):
        for i in range(2):
            m[i] = b1 * m[i] + (1 - b1) * g[i]
            u[i] = max(b2 * u[i], abs(g[i]))
            theta[i] -= (a / (1 - b1**t)) * (m[i] / u[i] if u[i] > 0 else 0.0)
        assert ours[t - 1] == pytest.approx(theta, abs=1e-15)
    assert ours[1][1] == 0.0  # a coordinate that never had a gradient does not move (no 0/0)


@pytest.mark.parametrize("inside", [False, True])
def test_rmsprop_by_hand_with_eps_outside_or_inside_the_root(inside):
    """d_t = g_t / (sqrt(v_t) + eps), or g_t / sqrt(v_t + eps) with eps_inside_sqrt: with a
    large eps the two differ by far more than rounding."""
    a, b2, eps = 0.1, 0.9, 0.25
    grads = [[0.5, -2.0], [1.5, 0.0], [-1.0, 3.0]]
    ours, _, _ = _scalar_run(RMSProp, grads, stepsize=a, beta2=b2, eps=eps, eps_inside_sqrt=inside)
    theta, v = [0.0, 0.0], [0.0, 0.0]
    for t, g in enumerate(grads, start=1):
        for i in range(2):
            v[i] = b2 * v[i] + (1 - b2) * g[i] ** 2
            root = math.sqrt(v[i] + eps) if inside else math.sqrt(v[i]) + eps
            theta[i] -= a * g[i] / root
        assert ours[t - 1] == pytest.approx(theta, abs=1e-12)


@pytest.mark.parametrize("cls", [Adam, AdaMax])
@pytest.mark.parametrize("averaging_beta", [None, 0.5])
def test_temporal_averaging_by_hand(cls, averaging_beta):
    """Section 7.2 for Adam and AdaMax: thetabar_t = beta thetabar_{t-1} + (1 - beta) theta_t,
    read as thetabar_t / (1 - beta^t); beta = beta2 unless averaging_beta is given."""
    a, b2 = 0.1, 0.9
    beta = b2 if averaging_beta is None else averaging_beta
    grads = [[1.0], [-1.0], [2.0]]
    ours, opt, x = _scalar_run(
        cls, grads, stepsize=a, beta2=b2, averaging=True, averaging_beta=averaging_beta
    )
    avg = 0.0
    for theta in ours:
        avg = beta * avg + (1 - beta) * theta[0]
    with opt.averaged_parameters():
        assert x.item() == pytest.approx(avg / (1 - beta**3), abs=1e-14)
        assert x.item() != pytest.approx(ours[-1][0], abs=1e-3)  # an average, not theta_t
    assert x.item() == pytest.approx(ours[-1][0], abs=0)


@pytest.mark.parametrize(
    "cls,hp",
    [
        (Adam, dict(beta1=0.9)),
        (AdaMax, {}),
        (SGD, dict(momentum=0.9, nesterov=True)),
        (RMSProp, dict(momentum=0.5)),
        (AdaGrad, {}),
        (AdaDelta, {}),
    ],
)
def test_per_member_hyperparameters_equal_separate_runs(cls, hp):
    stepsizes = [1e-3, 1e-2, 3e-2, 1e-1]
    members = len(stepsizes)
    x0, loss = _problem(seed=3, members=members)
    together = _run(lambda p: cls(p, stepsize=torch.tensor(stepsizes), **hp), x0=x0, loss=loss)
    for k, stepsize in enumerate(stepsizes):
        alone = _run(
            lambda p, s=stepsize: cls(p, stepsize=s, **hp),
            x0=x0[k],
            loss=lambda x: loss(x.expand(members, -1, -1)) / members,
        )
        # loss of one member alone: the members of `loss` are independent, so the gradient
        # of member k is that of its own term (all copies equal to x here, hence / members)
        _assert_same_path([p[k] for p in together], alone)


@pytest.mark.parametrize("cls", [Adam, SGD, RMSProp, AdaGrad, AdaDelta])
def test_a_population_that_shrinks_goes_on_as_its_members_would(cls):
    """After 3 steps of 3 members, member 1 leaves (`keep_members`): the two that are left
    take the next steps exactly as they do in the population of three."""
    x0, loss = _problem(seed=1, members=3)
    hp = dict(momentum=0.9) if cls in (SGD, RMSProp) else {}
    stepsizes = torch.tensor([0.1, 0.2, 0.05], dtype=torch.float64)
    full = x0.clone().requires_grad_(True)
    opt_full = cls([full], stepsize=stepsizes, **hp)
    part = x0.clone().requires_grad_(True)
    opt_part = cls([part], stepsize=stepsizes, **hp)
    for step in range(6):
        if step == 3:
            rows = torch.tensor([0, 2])
            shrunk = torch.nn.Parameter(part.detach()[rows].clone())
            opt_part.keep_members({part: shrunk}, rows)
            part = shrunk
        for x, opt in ((full, opt_full), (part, opt_part)):
            opt.zero_grad()
            loss(x).backward()  # the members' terms are independent
            opt.step()
    # the same arithmetic, member by member (batched products of 2 or 3 members may round
    # alike or not, by the machine's kernels)
    assert torch.allclose(part.detach(), full.detach()[[0, 2]], rtol=1e-6, atol=1e-6)
    assert not torch.allclose(part.detach(), x0[[0, 2]], rtol=1e-3, atol=1e-3)  # it moved
    assert opt_part.param_groups[0]["stepsize"].tolist() == [0.1, 0.05]
    assert all(
        v.shape[0] == 2
        for v in opt_part.state[part].values()
        if isinstance(v, torch.Tensor) and v.dim()
    )


@pytest.mark.parametrize("cls", [Adam, AdaMax, SGD, RMSProp, AdaGrad, AdaDelta])
def test_state_dict_round_trip(cls):
    x0, loss = _problem()
    hp = dict(momentum=0.9) if cls in (SGD, RMSProp) else {}
    straight = _run(lambda p: cls(p, **hp), steps=10, x0=x0, loss=loss)
    x = x0.clone().requires_grad_(True)
    opt = cls([x], **hp)
    for _ in range(5):
        opt.zero_grad()
        loss(x).backward()
        opt.step()
    saved = opt.state_dict()
    y = x.detach().clone().requires_grad_(True)
    resumed = cls([y], **hp)
    resumed.load_state_dict(saved)
    for _ in range(5):
        resumed.zero_grad()
        loss(y).backward()
        resumed.step()
    assert torch.equal(y.detach(), straight[-1])


@pytest.mark.parametrize(
    "config,message",
    [
        (dict(name="adamw"), "unknown optimizer 'adamw'"),
        (dict(name="adam", stepsize=-1e-3), "stepsize must be >= 0, got -0.001"),
        (dict(name="adam", beta1=1.0), "beta1 must be in [0, 1), got 1"),
        (dict(name="adam", beta2=-0.1), "beta2 must be in [0, 1), got -0.1"),
        (dict(name="adam", stepsize=torch.tensor([1e-3, -1.0])), "stepsize must be >= 0, got -1"),
        (dict(name="sgd", beta1=0.9), "SGD has no setting beta1"),
        (dict(name="adam", stepsize=float("inf")), "stepsize must be finite, got inf"),
        (dict(name="adam", eps=float("nan")), "eps must be finite, got nan"),
        (dict(name="adam", bias_correction="no"), "bias_correction must be true or false"),
        (dict(name="sgd", nesterov=1), "nesterov must be true or false, got 1"),
        (dict(name="adam", averaging_beta=1.0), "averaging_beta must be in [0, 1), got 1"),
        (dict(name="adamax", averaging_beta=float("nan")), "averaging_beta must be finite"),
        (
            dict(name="adagrad", initial_accumulator=torch.tensor([0.1, -1.0])),
            "initial_accumulator must be >= 0, got -1",
        ),
    ],
)
def test_bad_settings_raise_one_line_config_errors(config, message):
    with pytest.raises(ConfigError) as error:
        build_optimizer([torch.zeros(3, requires_grad=True)], config)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    "group,message",
    [
        ({"beta2": 1.5}, "beta2 must be in [0, 1), got 1.5"),
        ({"stepsize": -0.1}, "stepsize must be >= 0, got -0.1"),
        ({"bias_correction": "no"}, "bias_correction must be true or false, got 'no'"),
        ({"stepsiz": 0.1}, "Adam has no setting (in a param group) stepsiz"),
    ],
)
def test_param_groups_are_held_to_the_same_checks(group, message):
    """Settings given per param group are checked as those given to the constructor are."""
    from adamrepro.optim import Adam

    a, b = torch.zeros(3, requires_grad=True), torch.zeros(2, requires_grad=True)
    with pytest.raises(ConfigError) as error:
        Adam([{"params": [a]}, {"params": [b], **group}])
    assert str(error.value).startswith(message) and "\n" not in str(error.value)
    optimizer = Adam([{"params": [a]}])
    with pytest.raises(ConfigError, match="must be"):
        optimizer.add_param_group({"params": [b], "beta1": 1.0})


def test_adagrad_accepts_an_initial_accumulator_per_member():
    """The population path stacks differing settings into per-member tensors: s_0 too."""
    from adamrepro.optim import AdaGrad

    x = torch.ones(2, 3, requires_grad=True)
    optimizer = AdaGrad([x], stepsize=1.0, initial_accumulator=torch.tensor([0.0, 3.0]))
    x.grad = torch.ones(2, 3)
    optimizer.step()
    # s_1 = s_0 + g^2: member 0 steps by 1 / sqrt(1), member 1 by 1 / sqrt(4)
    assert torch.allclose(x[0], torch.zeros(3)) and torch.allclose(x[1], torch.full((3,), 0.5))


def test_an_older_state_dict_without_a_setting_still_loads():
    from adamrepro.optim import Adam

    x = torch.zeros(3, requires_grad=True)
    optimizer = Adam([x], stepsize=0.1)
    x.grad = torch.ones(3)
    optimizer.step()
    saved = optimizer.state_dict()
    del saved["param_groups"][0]["averaging_beta"]  # settings added after the save
    del saved["param_groups"][0]["bias_correction"]
    fresh = Adam([x], stepsize=0.1)
    fresh.load_state_dict(saved)
    assert fresh.param_groups[0]["averaging_beta"] is None  # each gets its default
    assert fresh.param_groups[0]["bias_correction"] is True
    x.grad = torch.ones(3)
    fresh.step()


def test_second_moment_statistics_are_those_of_vhat():
    """With a constant gradient g, Adam's bias-corrected vhat_t is g^2 at every t: the
    statistics must be those of |g| (claim P9's measurement)."""
    from adamrepro.optim.moments import second_moments

    x = torch.zeros(2, 100, requires_grad=True)
    stepsizes = torch.tensor([1e-3, 1e-2], dtype=torch.float64)
    optimizer = build_optimizer([x], {"name": "adam", "beta2": 0.99, "stepsize": stepsizes})
    g = torch.cat([torch.full((30,), 1e-9), torch.linspace(0.1, 2.0, 170)]).view(2, 100)
    for _ in range(3):
        x.grad = g.clone()
        optimizer.step()
    rows = second_moments(optimizer, {x: "x"})
    assert [r["member"] for r in rows] == [0, 1] and rows[0]["parameter"] == "x"
    for k, row in enumerate(rows):
        magnitude = g[k].abs()
        assert row["median"] == pytest.approx(magnitude.quantile(0.5).item(), rel=1e-4)
        assert row["p90"] == pytest.approx(magnitude.quantile(0.9).item(), rel=1e-4)
        assert row["below_eps"] == pytest.approx((magnitude < 1e-8).float().mean().item())
        assert row["eps"] == 1e-8
    assert rows[0]["below_eps"] == pytest.approx(0.3) and rows[1]["below_eps"] == 0.0
    assert second_moments(optimizer, {x: "x"}, members={1: 1})[0]["member"] == 1


def test_amsgrad_never_lets_its_second_moment_fall_and_reddis_form_has_no_correction():
    x = torch.zeros(50, dtype=torch.float64, requires_grad=True)
    optimizer = Adam([x], stepsize=0.1, beta2=0.9, amsgrad=True)
    reddi = Adam(
        [y := torch.zeros(3, dtype=torch.float64, requires_grad=True)],
        stepsize=0.1,
        beta1=0.0,
        beta2=0.5,
        amsgrad=True,
        bias_correction=False,
    )
    gen = torch.Generator().manual_seed(0)
    previous = torch.zeros(50, dtype=torch.float64)
    for t in range(1, 200):
        scale = 10.0 if t % 17 == 0 else 0.1  # rare large gradients, then small ones
        x.grad = scale * torch.randn(50, generator=gen, dtype=torch.float64)
        optimizer.step()
        v_max = optimizer.state[x]["v_max"]
        assert (v_max >= previous).all() and (v_max >= optimizer.state[x]["v"]).all()
        previous = v_max.clone()
    # Reddi et al.'s Algorithm 2 with beta1 = 0: x_1 = -alpha g / sqrt((1 - beta2) g^2)
    y.grad = torch.tensor([2.0, -3.0, 0.5], dtype=torch.float64)
    reddi.step()
    expected = -0.1 * y.grad / ((1 - 0.5) * y.grad.square()).sqrt()
    assert torch.allclose(y.detach(), expected, rtol=0, atol=1e-7)  # eps = 1e-8 in the sum


def test_theorem_4_1_decays_beta1_in_the_first_moment_only():
    x = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimizer = Adam([x], stepsize=1.0, beta1=0.9, beta1_decay=0.5, beta2=0.999, eps=0.0)
    m, v, grads = 0.0, 0.0, [1.0, -2.0, 3.0]
    for t, g in enumerate(grads, start=1):
        x.grad = torch.tensor([g], dtype=torch.float64)
        before = x.item()
        optimizer.step()
        beta1_t = 0.9 * 0.5 ** (t - 1)
        m = beta1_t * m + (1 - beta1_t) * g
        v = 0.999 * v + 0.001 * g * g
        step = (m / (1 - 0.9**t)) / math.sqrt(v / (1 - 0.999**t))
        assert before - x.item() == pytest.approx(step, rel=1e-12)


@pytest.mark.parametrize("nesterov", [False, True])
def test_rmsprop_with_momentum_by_hand(nesterov):
    """Section 5's RMSProp with momentum on the rescaled gradient d_t = g_t / (sqrt(v_t) + eps):
    v_t = mu v - alpha d_t; theta += v_t, or with Nesterov theta += mu v_t - alpha d_t."""
    a, b2, mu, eps = 0.1, 0.9, 0.8, 1e-8
    grads = [[0.5, -2.0], [1.5, 0.0], [-1.0, 3.0]]
    ours, _, _ = _scalar_run(
        RMSProp, grads, stepsize=a, beta2=b2, eps=eps, momentum=mu, nesterov=nesterov
    )
    theta, v, vel = [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]
    for t, g in enumerate(grads, start=1):
        for i in range(2):
            v[i] = b2 * v[i] + (1 - b2) * g[i] ** 2
            d = g[i] / (math.sqrt(v[i]) + eps)
            vel[i] = mu * vel[i] - a * d
            theta[i] += mu * vel[i] - a * d if nesterov else vel[i]
        assert ours[t - 1] == pytest.approx(theta, abs=1e-12)


def test_per_member_hyperparameters_follow_the_parameters_dtype_and_must_match_members():
    x = torch.zeros(2, 3, dtype=torch.float32, requires_grad=True)
    stepsize = torch.tensor([0.1, 0.2], dtype=torch.float64)  # float64 settings, float32 model
    optimizer = SGD([x], stepsize=stepsize)
    x.grad = torch.ones(2, 3, dtype=torch.float32)
    optimizer.step()
    assert x.dtype == torch.float32
    assert torch.equal(x.detach(), torch.tensor([[-0.1] * 3, [-0.2] * 3], dtype=torch.float32))
    y = torch.zeros(2, requires_grad=True)  # one value per member: a 1-D parameter
    y.grad = torch.ones(2)
    SGD([y], stepsize=stepsize).step()
    assert y.detach().tolist() == pytest.approx([-0.1, -0.2])
    z = torch.zeros(3, 4, requires_grad=True)
    z.grad = torch.ones(3, 4)
    mismatch = r"a hyperparameter has 2 members but a parameter has shape \(3, 4\): its leading"
    with pytest.raises(ConfigError, match=mismatch):
        SGD([z], stepsize=stepsize).step()


def test_settings_that_are_not_numbers_or_unknown_are_named_in_one_line():
    x = torch.zeros(3, requires_grad=True)
    for bad in (True, "abc"):  # a bool is not a stepsize, nor is text
        with pytest.raises(ConfigError, match=f"^stepsize must be a number, got {bad!r}$"):
            Adam([x], stepsize=bad)
    with pytest.raises(ConfigError) as error:
        Adam([x], foo=1, bar=2)
    settings = ", ".join(Adam.defaults_)
    assert str(error.value) == f"Adam has no setting bar, foo; its settings are {settings}"
    # a setting after one left at its None default is still checked
    with pytest.raises(ConfigError, match="beta1_decay must be"):
        Adam([x], averaging_beta=None, beta1_decay=2.0)


@pytest.mark.parametrize("torch_form", [False, True])
def test_rmsprop_momentum_forms_under_a_changing_stepsize(torch_form):
    """With alpha_t changing, the paper's velocity (v = mu v - alpha_t d) and torch's buffer
    (b = mu b + d; theta -= alpha_t b) part ways: each is followed by hand."""
    b2, mu = 0.9, 0.8
    x = torch.zeros(1, requires_grad=True)
    optimizer = RMSProp(
        [x], stepsize=0.1, beta2=b2, eps=0.0, momentum=mu, torch_momentum_form=torch_form
    )
    theta, v, buf = 0.0, 0.0, 0.0
    for alpha, g in ((0.1, 1.0), (0.05, -2.0), (0.02, 0.5)):
        optimizer.param_groups[0]["stepsize"] = alpha
        x.grad = torch.tensor([g])
        optimizer.step()
        v = b2 * v + (1 - b2) * g * g
        d = g / math.sqrt(v)
        buf = mu * buf + d if torch_form else mu * buf - alpha * d
        theta += -alpha * buf if torch_form else buf
        assert x.item() == pytest.approx(theta, abs=1e-12)


def test_a_per_member_setting_takes_its_parameters_dtype_and_device():
    """(G,) -> (G, 1, ..., 1) in the parameter's dtype, on the parameter's device (the meta
    device shows where a tensor went without a GPU)."""
    from adamrepro.optim.base import member_view

    stepsizes = torch.tensor([0.1, 0.2], dtype=torch.float64)
    param = torch.empty(2, 3, 4, dtype=torch.float32, device="meta")
    view = member_view(stepsizes, param)
    assert view.shape == (2, 1, 1) and view.dtype == torch.float32 and view.device.type == "meta"
    on_cpu = member_view(stepsizes, torch.zeros(2, 5, dtype=torch.bfloat16))
    assert on_cpu.dtype == torch.bfloat16 and on_cpu.flatten().tolist() == pytest.approx(
        [0.1, 0.2], rel=1e-2
    )


@pytest.mark.parametrize(
    "cls,settings,tensors",
    [
        (SGD, {}, 1),
        (SGD, {"momentum": 0.9}, 1),
        (SGD, {"momentum": 0.9, "nesterov": True}, 2),
        (SGD, {"momentum": 0.9, "nesterov": True, "torch_momentum_form": True}, 1),
        (AdaGrad, {}, 1),
        (RMSProp, {}, 2),
        (RMSProp, {"momentum": 0.9, "nesterov": True}, 3),
        (AdaDelta, {}, 2),
        (Adam, {}, 1),
        (Adam, {"averaging": True, "amsgrad": True}, 1),
        (AdaMax, {"averaging": True}, 1),
    ],
)
def test_scratch_memory_per_parameter(cls, settings, tensors):
    """Each rule's scratch tensors (each the size of its parameter: a grid's members times a
    layer on the GPU) are made on first use and reused; a step needs no more than these."""
    x = torch.randn(3, 4, requires_grad=True)
    optimizer = cls([x], **settings)
    for _ in range(2):
        x.grad = torch.randn(3, 4)
        optimizer.step()
    assert len(optimizer._work[x].tensors) == tensors


def test_rmsprop_with_torchs_nesterov_momentum_by_hand():
    """torch's buffer form with Nesterov on the rescaled gradient: b = mu b + d;
    theta -= alpha (d + mu b)."""
    b2, mu, alpha = 0.9, 0.8, 0.1
    x = torch.zeros(1, requires_grad=True)
    optimizer = RMSProp(
        [x], stepsize=alpha, beta2=b2, eps=0.0, momentum=mu, nesterov=True, torch_momentum_form=True
    )
    theta, v, buf = 0.0, 0.0, 0.0
    for g in (1.0, -2.0, 0.5):
        x.grad = torch.tensor([g])
        optimizer.step()
        v = b2 * v + (1 - b2) * g * g
        d = g / math.sqrt(v)
        buf = mu * buf + d
        theta -= alpha * (d + mu * buf)
        assert x.item() == pytest.approx(theta, abs=1e-12)


def test_a_checkpoint_from_when_the_loop_wrote_alpha_t_loads_alpha_back():
    """Checkpoints written before the optimizers computed alpha_t kept the loop's alpha_t in
    `stepsize` and alpha in `initial_stepsize`: alpha comes back, so that the decay is not
    applied twice."""
    from adamrepro.optim import Adam

    p = torch.nn.Parameter(torch.zeros(3))
    old = Adam([p], stepsize=0.5)
    p.grad = torch.ones(3)
    old.step()
    saved = old.state_dict()
    saved["param_groups"][0].update(stepsize=0.5 / math.sqrt(7), initial_stepsize=0.5)
    new = Adam([p], stepsize=0.5)
    new.schedule("sqrt_step")
    new.load_state_dict(saved)
    assert new.param_groups[0]["stepsize"] == 0.5 and "initial_stepsize" not in new.param_groups[0]
    assert new.current_stepsize(new.param_groups[0]) == pytest.approx(0.5)  # t = 1 so far
