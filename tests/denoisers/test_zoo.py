"""The weight zoo: names, loading, rescaling to other noise levels, family switching, colour."""

import json
import math

import pytest
import torch

import denoisers
from denoisers import zoo
from denoisers.estimate import adversarial_averagedness, adversarial_lipschitz

SHIPPED = [n for n in denoisers.available() if n.startswith(zoo.FAMILY + "-")]
#: the shipped ridge regularisers (one model for every noise level each)
RIDGE = [n for n in denoisers.available() if n in ("crr", "wcrr")]
#: shipped ridge weights served under another boundary (same file)
VARIANTS = [n for n in denoisers.available() if n in zoo.RIDGE_VARIANTS]
#: shipped firmly non-expansive networks (alpha <= 1/2), outside the family
FIRM = [n for n in denoisers.available() if n.startswith(zoo.FIRM_PREFIX)]


@pytest.fixture(scope="module")
def family():
    """The family, loaded once (loading re-checks every member's certificate, which takes seconds)."""
    return denoisers.load(zoo.FAMILY)


def member(family, name):
    return next(m for m in family.denoiser.members if m.metadata["name"] == name)


def test_available_lists_the_family_and_its_members():
    names = denoisers.available()
    assert SHIPPED, "the zoo ships no weights"
    assert names[0] == zoo.FAMILY and set(names[1:]) == set(SHIPPED) | set(RIDGE) | set(VARIANTS) | set(FIRM)
    for n in SHIPPED + RIDGE + FIRM:
        assert (zoo.weights_dir() / f"{n}.json").is_file(), f"{n} has no JSON metadata next to its weights"


@pytest.mark.parametrize("name", SHIPPED)
def test_each_member_loads_certified_with_its_levels(family, name):
    d = member(family, name)
    cert = d.certificate
    assert cert.lipschitz_bound <= 1.0 + 1e-9 and cert.alpha is not None and 0 < cert.alpha < 1
    lo, hi = d.metadata["noise_levels"]
    assert 0 < lo <= 2.55 / 255 + 1e-12 and hi >= 50 / 255 - 1e-12
    meta = json.loads((zoo.weights_dir() / f"{name}.json").read_text())
    assert d.train_sigma == pytest.approx(meta["sigma"])


def test_firm_members_are_not_in_the_family(family):
    names = {m.metadata["name"] for m in family.denoiser.members}
    assert not names & set(FIRM) and names == set(SHIPPED)


@pytest.mark.parametrize("name", FIRM)
def test_each_firm_member_is_firmly_non_expansive_under_adversarial_search(name):
    """Certified ``alpha <= 1/2``; the averagedness inequality with ``alpha = 1/2`` (firm
    non-expansiveness) holds on adversarial pairs at, below and above the training level."""
    d = denoisers.load(name)
    cert = d.certificate
    assert cert.alpha is not None and cert.alpha <= 0.5 and cert.lipschitz_bound <= 1.0 + 1e-9
    meta = json.loads((zoo.weights_dir() / f"{name}.json").read_text())
    assert meta["architecture"]["theta"] == 0.5
    s0 = d.denoiser.train_sigma
    x0 = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(4))
    for s in (s0 / 4, s0, 4 * s0):
        lip = adversarial_lipschitz(d, x0, s, steps=30, seed=0)
        avg = adversarial_averagedness(d, x0, 0.5, s, steps=30, seed=0)
        assert 0.5 < lip.value <= 1.0 + 1e-4  # the search is not idle
        assert avg.value <= 1 + 1e-4


def test_rescaling_is_conjugation_by_the_scale(family):
    d = member(family, SHIPPED[0])
    s0 = d.train_sigma
    x = torch.rand(2, 1, 24, 24, generator=torch.Generator().manual_seed(0))
    for s in (s0 / 3, s0, 2 * s0):
        c = s0 / s
        torch.testing.assert_close(d(x, s), d.net(c * x, s0) / c, rtol=1e-5, atol=1e-6)


def test_rescaled_member_keeps_its_certificate_under_adversarial_search(family):
    d = member(family, SHIPPED[0])
    alpha = d.certificate.alpha
    x0 = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    for s in (2.55 / 255, 50 / 255):  # far from the training level on both sides
        lip = adversarial_lipschitz(d, x0, s, steps=30, seed=0)
        avg = adversarial_averagedness(d, x0, alpha, s, steps=30, seed=0)
        assert 0.5 < lip.value <= d.certificate.lipschitz_bound + 1e-4  # the search is not idle
        assert avg.value <= 1 + 1e-4


def test_family_switches_member_by_level_and_each_image_gets_its_own(family):
    fam = family.denoiser
    levels, t = fam.levels, fam.switch_levels
    assert levels == sorted(levels) and len(t) == len(levels) - 1
    assert all(a < b for a, b in zip(t, t[1:])), "every member serves a non-empty band of levels"
    # one level inside each member's band [t_{i-1}, t_i) (geometric midpoints; below t_0 and above
    # the last switch level: a factor 2 away); the measured switch levels need not bracket the
    # training levels (a member may serve best a band next to its own level)
    bands = [t[0] / 2, *[math.sqrt(a * b) for a, b in zip(t, t[1:])], t[-1] * 2]
    idx = fam.member_index(torch.tensor(bands), len(bands))
    assert idx.tolist() == list(range(len(levels)))
    x = torch.rand(len(levels), 1, 20, 20, generator=torch.Generator().manual_seed(2))
    s = torch.tensor(bands)
    out = fam(x, s)
    for i, m in enumerate(fam.members):
        torch.testing.assert_close(out[i:i + 1], m(x[i:i + 1], s[i:i + 1]))
    assert fam.certificate.alpha == pytest.approx(max(m.certificate.alpha for m in fam.members))


def test_family_switch_levels_are_validated(family):
    m = list(family.denoiser.members)
    with pytest.raises(ValueError, match=f"switch_levels needs {len(m) - 1}"):
        zoo.ZooFamily(m, [0.1] * len(m))
    if len(m) > 1:
        with pytest.raises(ValueError, match="increasing"):
            zoo.ZooFamily(m, [math.nan] * (len(m) - 1))
        with pytest.raises(ValueError, match="increasing"):
            zoo.ZooFamily(m, [0.1 * (len(m) - i) for i in range(len(m) - 1)] if len(m) > 2 else [-0.1])


def test_colour_is_per_channel(family):
    d = family
    x = torch.rand(1, 3, 20, 20, generator=torch.Generator().manual_seed(3))
    out = d(x, 0.1)
    for c in range(3):
        torch.testing.assert_close(out[:, c:c + 1], d(x[:, c:c + 1], 0.1))


def test_unknown_name_lists_what_exists():
    with pytest.raises(ValueError, match="available: rk-averaged"):
        denoisers.load("no-such-denoiser")
    with pytest.raises(TypeError, match="name"):
        denoisers.load(3)


def test_family_file_is_read_and_a_corrupt_one_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(zoo, "_WEIGHTS", tmp_path)
    assert zoo._switch_levels("fam") is None
    (tmp_path / "fam.family.json").write_text('{"switch_levels": [0.02, 0.07]}')
    assert zoo._switch_levels("fam") == [0.02, 0.07]
    for bad in ("{not json", '{"levels": [1]}', '{"switch_levels": ["a"]}', '{"switch_levels": 3}'):
        (tmp_path / "fam.family.json").write_text(bad)
        with pytest.raises(ValueError, match="corrupt family file"):
            zoo._switch_levels("fam")


# ---- the manifest: digest-pinned certificates of the shipped weights ---------------------------

def test_manifest_lists_every_shipped_file_with_its_digest():
    from denoisers.serialize import file_sha256

    digests = zoo.manifest_digests()
    shipped = sorted(p.name for p in zoo.weights_dir().glob("*.safetensors"))
    assert sorted(digests) == shipped, "run python -m denoisers.zoo.manifest after changing the zoo"
    for name in shipped:
        assert file_sha256(zoo.weights_dir() / name) == digests[name], f"{name} changed since the manifest"


@pytest.mark.parametrize("name", SHIPPED)
def test_stored_layer_bounds_match_a_recomputation_spot_check(name):
    """The trusted path installs stored bounds: recompute the first and last layers' bounds."""
    from denoisers.checkpoint import load_checkpoint
    from denoisers.layers.conv_bounds import conv_opnorm_upper_bound

    path = zoo.weights_dir() / f"{name}.safetensors"
    tensors, meta = load_checkpoint(path)
    stored = {layer["name"]: layer["norm_bound"] for layer in meta["certificate"]["layers"]}
    first, last = sorted(stored, key=lambda k: int(k.split(".")[1]))[0], sorted(stored, key=lambda k: int(k.split(".")[1]))[-1]
    for layer in (first, last):
        bound = conv_opnorm_upper_bound(tensors[layer]).bound
        assert bound == pytest.approx(stored[layer], rel=1e-9)


def test_trusted_digest_skips_recomputation_and_changed_bytes_do_not(tmp_path, monkeypatch):
    from denoisers import AveragedConfig, AveragedResNet, CheckpointError, save_denoiser
    from denoisers.checkpoint import load_checkpoint, save_checkpoint
    from denoisers.serialize import file_sha256

    torch.manual_seed(0)
    net = AveragedResNet(AveragedConfig(channels=4, hidden=4, depth=2, pixel_unshuffle=2))
    net.freeze()
    name = f"{zoo.FAMILY}-tiny"
    dst = tmp_path / f"{name}.safetensors"
    save_denoiser(net, dst, metadata={"sigma": 0.1})
    calls = []
    original = AveragedResNet.compute_certificate
    monkeypatch.setattr(AveragedResNet, "compute_certificate",
                        lambda self, **kw: calls.append(1) or original(self, **kw))
    monkeypatch.setattr(zoo, "_WEIGHTS", tmp_path)
    (tmp_path / zoo.MANIFEST).write_text(json.dumps({"files": {dst.name: {"sha256": file_sha256(dst)}}}))
    d = denoisers.load(name).denoiser
    assert calls == [] and d.certificate.to_dict() == net.certificate.to_dict()
    assert denoisers.load(zoo.FAMILY).certificate.alpha == pytest.approx(net.certificate.alpha)
    assert calls == []
    denoisers.load(name, verify=True)
    assert len(calls) == 1
    # a wrong digest (bytes changed since the manifest): recomputed, and still certified
    (tmp_path / zoo.MANIFEST).write_text(json.dumps({"files": {dst.name: {"sha256": "0" * 64}}}))
    denoisers.load(name)
    assert len(calls) == 2
    # tampered weights with a stale digest: recomputation refuses them
    tensors, meta = load_checkpoint(dst)
    key = next(k for k in tensors if k.endswith("weight"))
    tensors[key] = tensors[key] * 3.0
    save_checkpoint(dst, tensors, meta)
    with pytest.raises(CheckpointError, match="does not match"):
        denoisers.load(name)
    (tmp_path / zoo.MANIFEST).write_text("{not json")
    with pytest.raises(ValueError, match="corrupt zoo manifest"):
        denoisers.load(name)


@pytest.mark.slow
def test_manifest_check_recomputes_every_certificate():
    from denoisers.zoo.manifest import main as manifest_main

    assert manifest_main(["--check"]) == 0


@pytest.mark.parametrize("name", RIDGE)
def test_each_ridge_model_loads_with_its_certificate_and_serves_every_level(name):
    d = denoisers.load(name)
    rc = d.ridge_certificate
    assert rc.kind == name and rc.w_norm_bound <= 1 + 1e-6
    if name == "crr":
        assert rc.convex and d.certificate.alpha == 0.5 and d.certificate.lipschitz_bound == 1.0
    else:
        assert rc.lambda_max * rc.weak_convexity < 1 and d.certificate.alpha is None
    from skimage import data

    x = torch.from_numpy(data.camera()[96:160, 96:160] / 255.0).float()[None, None]  # a natural patch
    for s in (5 / 255, 50 / 255):
        y = x + s * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
        out = d(y, s)
        assert out.shape == x.shape and torch.isfinite(out).all()
        assert (out - x).square().mean() < (y - x).square().mean()  # it denoises at both ends


@pytest.mark.parametrize("name", VARIANTS)
def test_ridge_variant_serves_the_same_weights_with_its_boundary(name):
    """``crr-circular``: the crr file's weights and certified constants, with ``W`` on the torus (so
    ``R`` is invariant under cyclic shifts, which the reflected crr is not)."""
    base, boundary = zoo.RIDGE_VARIANTS[name]
    d, b = denoisers.load(name), denoisers.load(base)
    assert d.reg.config.boundary == boundary != b.reg.config.boundary
    for (k1, v1), (k2, v2) in zip(d.reg.state_dict().items(), b.reg.state_dict().items()):
        assert k1 == k2 and torch.equal(v1, v2)
    rc, rb = d.ridge_certificate, b.ridge_certificate
    assert rc.w_norm_bound == rb.w_norm_bound and rc.convex == rb.convex
    assert rc.lip_grad <= rb.lip_grad  # no reflection factor
    assert d.certificate.alpha == b.certificate.alpha
    x = torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    shifted = torch.roll(x, shifts=(5, -3), dims=(-2, -1))
    with torch.no_grad():
        e, es = d.reg.energy(x, 0.1), d.reg.energy(shifted, 0.1)
        eb, ebs = b.reg.energy(x, 0.1), b.reg.energy(shifted, 0.1)
    assert float(es) == pytest.approx(float(e), rel=1e-5) and abs(float(ebs) - float(eb)) > 1e-4 * abs(float(eb))
