"""Prices on their own: ``Market.update`` driven on the steady state of a tiny world with stocks and Chinese
sales scaled by hand.

Maths (agents/market.py): P*_i = P0_i clip(signal_i, 1/k, k) (1 - d_i) with signal C^(-1/ε) outside China
(cover C) and Q^(1/ε) in China (sales Q); each day P_i += (P*_i - P_i) / adjust_days.
"""

from __future__ import annotations

import numpy as np
import pytest

from rareshock.agents.market import DY_CN, DY_EX, ND_CN, ND_EX, PR_CN, PR_EX
from rareshock.model.codes import Material
from tests.popworld import col, tiny_model

P0 = {DY_CN: 224.0, DY_EX: 250.0, ND_CN: 48.7, ND_EX: 48.7, PR_CN: 51.0, PR_EX: 51.0}
NDPR, DYTB, NDFEB = int(Material.NDPR), int(Material.DYTB), int(Material.NDFEB)


def _market(*overrides):
    model = tiny_model(*overrides)
    return model, model.net, model.market


def _after(p0, target, days, adjust=20.0):
    p = p0
    for _ in range(days):
        p += (target - p) / adjust
    return p


def test_without_scarcity_prices_stay_exactly_at_their_start():
    model, net, mk = _market()
    np.testing.assert_array_equal(mk.price, [P0[i] for i in range(6)])
    for _ in range(100):
        mk.update()
    np.testing.assert_array_equal(mk.price, mk.price0)
    assert mk.price_ex_cn_ndfeb == 48.7
    names = mk.COLUMNS
    assert [col(model, n) for n in names[:6]] == [P0[i] for i in range(6)]


def test_less_cover_outside_china_raises_the_ex_china_magnet_price_toward_p0_c_to_minus_one_over_e():
    model, net, mk = _market()
    net.stock.ravel()[mk.ex_nd] *= 0.5  # users outside China hold half their normal stock
    mk.update()
    target = 48.7 * 0.5 ** (-1 / 0.5)  # 4 x P0
    assert mk.price[ND_EX] == 48.7 + (target - 48.7) / 20  # one twentieth of the gap
    for i in (DY_CN, DY_EX, ND_CN, PR_CN, PR_EX):
        assert mk.price[i] == P0[i]  # the other prices see no scarcity
    for _ in range(59):
        mk.update()
    assert mk.price[ND_EX] == pytest.approx(_after(48.7, target, 60), rel=1e-13)
    assert mk.price[ND_EX] == pytest.approx(target + (48.7 - target) * (19 / 20) ** 60, rel=1e-13)
    # more cover than normal: cheaper
    model, net, mk = _market()
    net.stock.ravel()[mk.ex_nd] *= 2.0
    mk.update()
    assert mk.price[ND_EX] == 48.7 + (48.7 * 2.0**-2 - 48.7) / 20


@pytest.mark.parametrize("elasticity", [0.25, 0.5, 1.0])
def test_the_elasticity_sets_the_response(elasticity):
    model, net, mk = _market(f"prices.elasticity_ndfeb={elasticity}", "prices.adjust_days=1")
    net.stock.ravel()[mk.ex_nd] *= 0.8
    mk.update()  # adjust_days 1: the target at once
    assert mk.price[ND_EX] == pytest.approx(48.7 * 0.8 ** (-1 / elasticity), rel=1e-14)


def test_less_dytb_cover_at_foreign_makers_raises_the_ex_china_dy_and_ndpr_cover_the_ndpr_price():
    model, net, mk = _market()
    net.stock.ravel()[mk.mk_dy] *= 0.5
    net.stock.ravel()[mk.mk_nd] *= 0.4
    mk.update()
    assert mk.price[DY_EX] == pytest.approx(250.0 + (250.0 * 0.5 ** (-1 / 0.35) - 250.0) / 20, rel=1e-14)
    assert mk.price[PR_EX] == pytest.approx(51.0 + (51.0 * 0.4 ** (-1 / 0.5) - 51.0) / 20, rel=1e-14)
    assert mk.price[ND_EX] == 48.7 and mk.price[DY_CN] == 224.0 and mk.price[PR_CN] == 51.0
    # the recorded Dy/Tb cover of foreign makers: their stock over their daily need
    need = net.need.ravel()[mk.mk_dy]
    assert col(model, "ex_cn_makers_dytb_cover_days") == pytest.approx(
        net.stock.ravel()[mk.mk_dy].sum() / need.sum(), rel=1e-14
    )
    assert col(model, "ex_cn_makers_dytb_cover_days") == pytest.approx(
        0.5 * (need * mk.mk_dy_cover).sum() / need.sum(), rel=1e-14
    )


def test_lower_chinese_sales_lower_the_china_prices():
    model, net, mk = _market()
    net.out_rate.ravel()[mk.cn_nd] *= 0.5  # Chinese makers ship half of 2024
    net.out_rate.ravel()[mk.cn_dy] *= 0.8
    mk.update()
    assert mk.price[ND_CN] == pytest.approx(48.7 + (48.7 * 0.5**2 - 48.7) / 20, rel=1e-14)
    assert mk.price[DY_CN] == pytest.approx(224.0 + (224.0 * 0.8 ** (1 / 0.35) - 224.0) / 20, rel=1e-14)
    assert mk.price[ND_CN] < 48.7 and mk.price[DY_CN] < 224.0
    assert mk.price[ND_EX] == 48.7 and mk.price[PR_CN] == 51.0


def test_prices_are_clipped_at_max_multiple():
    model, net, mk = _market("prices.adjust_days=1", "prices.max_multiple=10")
    net.stock.ravel()[mk.ex_nd] *= 1 / 64  # signal 4096
    net.out_rate.ravel()[mk.cn_nd] *= 0.01  # signal 1e-4
    net.out_rate.ravel()[mk.cn_pr] *= 100.0  # signal 1e4
    mk.update()
    assert mk.price[ND_EX] == 487.0
    assert mk.price[ND_CN] == pytest.approx(4.87, rel=1e-15)
    assert mk.price[PR_CN] == 510.0
    # no stock at all: still the cap, not infinity
    net.stock.ravel()[mk.ex_nd] = 0.0
    mk.update()
    assert mk.price[ND_EX] == 487.0
    model, net, mk = _market("prices.adjust_days=1", "prices.max_multiple=3")
    net.stock.ravel()[mk.ex_nd] = 0.0
    mk.update()
    assert mk.price[ND_EX] == pytest.approx(3 * 48.7, rel=1e-15)


def test_chinas_discount_applies_to_ndfeb_and_ndpr_ex_china_only():
    model, net, mk = _market()
    mk.set_cn_discount(0.25)
    mk.update()
    assert mk.price[ND_EX] == 48.7 + (48.7 * 0.75 - 48.7) / 20
    assert mk.price[PR_EX] == 51.0 + (51.0 * 0.75 - 51.0) / 20
    for i in (DY_CN, DY_EX, ND_CN, PR_CN):
        assert mk.price[i] == P0[i]
    assert mk.price_ex_cn_ndfeb == mk.price[ND_EX]
    # together with scarcity: the discount multiplies the scarcity target
    net.stock.ravel()[mk.ex_nd] *= 0.5
    p = mk.price[ND_EX]
    mk.update()
    assert mk.price[ND_EX] == pytest.approx(p + (48.7 * 4.0 * 0.75 - p) / 20, rel=1e-15)


def test_recorded_prices_are_todays():
    model, net, mk = _market()
    net.stock.ravel()[mk.ex_nd] *= 0.7
    for _ in range(5):
        mk.update()
        assert [col(model, n) for n in mk.COLUMNS[:6]] == mk.price.tolist()


def test_the_same_state_gives_the_same_prices():
    def run():
        model, net, mk = _market()
        r = np.random.default_rng(0)
        out = []
        for _ in range(30):
            net.stock *= r.uniform(0.9, 1.1, net.stock.shape)
            net.out_rate *= r.uniform(0.9, 1.1, net.out_rate.shape)
            mk.update()
            out.append(mk.price.copy())
        return np.array(out)

    a, b = run(), run()
    np.testing.assert_array_equal(a, b)
    assert not (a == a[0]).all()
