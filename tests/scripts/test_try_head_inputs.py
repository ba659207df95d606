"""scripts/try_head_inputs.py and fusion_v2.Head's dropped blocks: a block left out has no coefficient."""
import numpy as np


def test_a_dropped_block_gets_no_coefficient_and_the_rest_still_learns():
    import fusion_v2 as v2
    import try_head_inputs as t

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(7), 30)
    x = rng.normal(size=(len(y), 555))
    x[:, 60] += 3 * (y == 1)  # a geometry column that tells disgust
    x[:, 10] += 3 * (y == 3)  # a blendshape column that tells happiness
    for dropped, geometry_used in (((), True), ((t.BLOCKS["geometry"],), False)):
        model = v2.make_head("fusion-v6", dropped=dropped).fit(x, y)
        _, _, w, _ = model.export()
        assert bool(np.abs(w[t.BLOCKS["geometry"]]).max() > 0) == geometry_used
        assert np.abs(w[10]).max() > 0  # the blendshapes still count
    assert list(t.variants(["geometry", "sharpness"]).values()) == [(), (t.BLOCKS["geometry"],),
                                                                   (t.BLOCKS["sharpness"],)]
    assert sum(b.stop - b.start for b in t.BLOCKS.values()) == 555  # v6's input width, every column once
