"""Panoptic-DeepLab targets: hand-derived cases and agreement with the slow reference."""

from __future__ import annotations

import numpy as np
import pytest

from panseg.data.targets import PanopticTargetGenerator
from panseg.data.targets_reference import gaussian_kernel, reference_targets

CITY = dict(ignore_label=255, label_divisor=1000, thing_ids=range(11, 19))
KEYS = ("semantic", "semantic_weights", "center", "center_weights", "offset", "offset_weights")


def both(panoptic, **kw):
    fast = PanopticTargetGenerator(**{**CITY, **kw})(panoptic)
    slow = reference_targets(panoptic, **{**CITY, **kw})
    for k in KEYS:
        assert fast[k].dtype == slow[k].dtype, k
        assert fast[k].shape == slow[k].shape, k
        np.testing.assert_array_equal(fast[k], slow[k], err_msg=k)
    return fast


def gauss(dy, dx, sigma):
    return np.float32(np.exp(-(dy * dy + dx * dx) / (2.0 * sigma * sigma)))


def test_one_instance_hand_derived():
    pan = np.zeros((6, 8), dtype=np.int32)  # stuff class 0
    pan[1:3, 2:5] = 13001  # 2x3 car: centre (1.5, 3.0) -> rounded (2, 3), half to even
    t = both(pan, sigma=1)
    expected_sem = np.zeros((6, 8), np.int64)
    expected_sem[1:3, 2:5] = 13
    np.testing.assert_array_equal(t["semantic"], expected_sem)
    yy, xx = np.mgrid[0:6, 0:8]
    heat = np.exp(-((yy - 2) ** 2 + (xx - 3) ** 2) / 2.0).astype(np.float32)
    np.testing.assert_array_equal(t["center"][0], heat)
    assert t["center"][0, 2, 3] == 1.0
    assert t["offset"][0, 1, 2] == 0.5 and t["offset"][1, 1, 2] == 1.0
    assert t["offset"][0, 2, 4] == -0.5 and t["offset"][1, 2, 4] == -1.0
    assert not t["offset"][:, pan == 0].any()
    np.testing.assert_array_equal(t["semantic_weights"], np.where(pan == 13001, 3, 1))
    np.testing.assert_array_equal(t["center_weights"], np.ones((6, 8)))
    np.testing.assert_array_equal(t["offset_weights"], (pan == 13001).astype(np.float32))
    # Offsets kept on stuff when ignore_stuff_in_offset is off.
    t2 = both(pan, sigma=1, ignore_stuff_in_offset=False)
    np.testing.assert_array_equal(t2["offset_weights"], np.ones((6, 8)))


def test_crowd_detectron2_and_deeplab2():
    pan = np.full((8, 8), 255000, dtype=np.int32)  # void
    pan[2:, :] = 3000  # stuff
    pan[4:6, 4:6] = 13000  # crowd car (instance 0): centre (4.5, 4.5) -> (4, 4)
    t = both(pan, sigma=1)
    crowd = pan == 13000
    assert (t["semantic"][crowd] == 13).all()
    assert (t["semantic"][:2] == 255).all()
    assert not t["center_weights"][crowd].any() and not t["offset_weights"][crowd].any()
    assert (t["center_weights"][2:][~crowd[2:]] == 1).all() and not t["center_weights"][:2].any()
    # detectron2 still stamps a Gaussian, writes offsets and weights small crowd regions.
    assert t["center"][0, 4, 4] == 1.0
    assert (t["semantic_weights"][crowd] == 3).all()
    assert t["offset"][0, 5, 5] == -0.5
    ign = both(pan, sigma=1, ignore_crowd_in_semantic=True)
    assert (ign["semantic"][crowd] == 255).all()

    d = both(pan, sigma=1, variant="deeplab2")
    assert (d["semantic"][crowd] == 13).all()
    assert not d["center"].any() and not d["offset"].any()
    assert (d["semantic_weights"] == 1).all()
    assert not d["center_weights"][crowd].any() and not d["offset_weights"].any()


def test_instance_at_the_border_is_clipped():
    sigma = 2
    pan = np.zeros((10, 12), dtype=np.int32)
    pan[0:2, 0:2] = 11001  # centre (0.5, 0.5) -> (0, 0)
    pan[9, 10:12] = 12001  # centre (9, 10.5) -> (9, 10)
    t = both(pan, sigma=sigma, small_instance_area=0)
    heat = t["center"][0]
    assert heat[0, 0] == 1.0 and heat[9, 10] == 1.0
    assert heat[0, 1] == gauss(0, 1, sigma)
    assert heat[7, 0] == gauss(7, 0, sigma)  # second centre is 10 columns away
    assert heat[0, 8] == 0.0  # 8 > 3*sigma + 1 from both centres
    assert (t["semantic_weights"] == 1).all()  # small_instance_area=0 disables the weight
    k = gaussian_kernel(sigma)
    assert k.shape == (15, 15) and k[7, 7] == 1.0


def test_no_things():
    pan = np.full((5, 7), 2000, dtype=np.int32)
    pan[0] = 255000
    pan[:, 3] = 4000
    for variant in ("detectron2", "deeplab2"):
        t = both(pan, variant=variant)
        assert not t["center"].any() and not t["offset"].any() and not t["offset_weights"].any()
        np.testing.assert_array_equal(t["semantic"], pan // 1000)
        np.testing.assert_array_equal(t["center_weights"], (pan != 255000).astype(np.float32))
        assert (t["semantic_weights"] == 1).all()


def test_deeplab2_integer_offsets():
    pan = np.zeros((6, 8), dtype=np.int32)
    pan[1:3, 2:5] = 13001
    t = both(pan, sigma=1, variant="deeplab2")
    assert t["offset"][0, 1, 2] == 1.0 and t["offset"][0, 2, 2] == 0.0  # round(1.5) = 2
    assert t["offset"][1, 1, 2] == 1.0
    assert t["semantic_weights"][1, 2] == 3


def random_label(rng, h, w, n, *, divisor=1000, ignore=255, things=range(11, 19), stuff=range(11)):
    pan = np.full((h, w), ignore * divisor, np.int64)
    bands = np.linspace(0, h, 4).astype(int)
    for i in range(3):
        pan[bands[i] : bands[i + 1]] = int(rng.choice(list(stuff))) * divisor
    yy, xx = np.mgrid[0:h, 0:w]
    for k in range(n):
        cls = int(rng.choice(list(things)))
        inst = 0 if k % 7 == 3 else k + 1
        cy, cx = rng.uniform(-3, h + 3), rng.uniform(-3, w + 3)
        ry, rx = rng.uniform(0.5, h / 3), rng.uniform(0.5, w / 3)
        pan[((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1] = cls * divisor + inst
    return pan


@pytest.mark.parametrize("variant", ["detectron2", "deeplab2"])
def test_agrees_with_reference_on_random_labels(variant):
    rng = np.random.default_rng(7)
    for trial in range(6):
        h, w = (int(v) for v in rng.integers(1, 60, 2))
        pan = random_label(rng, h, w, int(rng.integers(0, 15)))
        both(
            pan,
            variant=variant,
            sigma=int(rng.integers(1, 6)),
            small_instance_area=int(rng.integers(0, 200)),
            ignore_stuff_in_offset=bool(trial % 2),
            ignore_crowd_in_semantic=bool(trial % 3 == 0),
        )


def test_many_instances_and_coco_conventions():
    rng = np.random.default_rng(3)
    pan = np.zeros((40, 40), dtype=np.int32)  # COCO: ignore 0 (void), divisor 256
    pan[:20] = 90 * 256  # stuff
    ids = rng.permutation(300) + 1  # 300 one-to-few-pixel instances of class 1
    pan.reshape(-1)[:600] = np.repeat(256 + ids, 2)
    coco = dict(ignore_label=0, label_divisor=256, thing_ids=range(1, 81))
    for variant in ("detectron2", "deeplab2"):
        both(pan, variant=variant, sigma=2, **coco)


def test_unusual_inputs():
    rng = np.random.default_rng(5)
    # thing ids in many runs take the lookup-table path; huge values take np.unique's
    pan = random_label(rng, 30, 25, 8, things=[1, 3, 5, 7, 9, 11], stuff=[0, 2, 4])
    both(pan, thing_ids=[1, 3, 5, 7, 9, 11])
    big = random_label(rng, 20, 20, 6, divisor=1 << 20, ignore=255, things=range(11, 19))
    both(big, label_divisor=1 << 20)
    both(np.zeros((0, 5), dtype=np.int32))
    both(np.full((3, 3), 255000, dtype=np.int32))
    gen = PanopticTargetGenerator(**CITY)
    with pytest.raises(ValueError, match="negative"):
        gen(np.array([[-1, 0]]))
    with pytest.raises(ValueError, match="integer"):
        gen(np.zeros((2, 2), dtype=np.float32))
    with pytest.raises(ValueError, match="sigma"):
        PanopticTargetGenerator(**CITY, sigma=2.5)
