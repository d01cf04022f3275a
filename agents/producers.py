"""Producers: upstream separators (NdPr, Dy/Tb and Sm oxides) and magnet makers (NdFeB, SmCo), in China,
Japan, Europe, the US and the rest of the world.

Interface (what the model uses)
-------------------------------
``Producers(model, cfg)`` with ``cfg`` the scenario config (sections ``separators``, ``magnet_makers``).
``add_nodes(builder)``
    Adds the separators, then the magnet makers, to the network builder: Chinese units with relative sizes
    drawn from ``model.rng`` (gamma(4)), non-Chinese ones per region from the config. Raises
    :class:`ConfigError` for a magnet-maker region that is not allowed.
``recipe() -> (M, M) array``
    t of each input per t of each output (NdFeB: NdPr and Dy/Tb; SmCo: Sm).
``bind(net)``
    After the network is built: index arrays for one vectorised production step over every (producer,
    output material) pair, including non-Chinese separators' potential outputs (capacity may come later).
``produce()``
    Phase 3 of the day: every producer makes what its target stock and customers' shippable orders call
    for, within capacity and within its input stocks.
``ship(day)``
    Phase 4: allocation under scarcity and shipping (sea, or air for short buyers) on the network.
``refresh_capacity(net)``
    Capacities changed (new projects): read them again (a Chinese production quota still binds).
``set_cn_quota(materials, share)``
    Policy method (``cn_production_quota``): Chinese separators' capacity for these oxides becomes
    ``share`` of its configured level.
``adapt(market)``
    Monthly: non-Chinese NdFeB makers thrift Dy/Tb when its price outside China is high.
``COLUMNS``
    China's magnet exports by destination and its Dy/Tb oxide exports (t/day), written by ``ship`` into
    the record row (``row`` at ``at``, set by the registry). Production by material
    (``made``) and input use (``used_in``) are recorded in the material balance; each (producer, material)
    pair's output today (``made_by_pair``) feeds the record of flows by stage and region
    (:class:`rareshock.model.records.MaterialFlows`).

Decisions and maths
-------------------
Production (per producer i and output material m, t/day): with ō the smoothed shipments, D the
finished-goods target (``target_stock_days``), Q the shippable orders on its edges, S the stock and K the
capacity, the wanted output is ``w = clip(ō D + Q - S, 0, K)``; inputs limit it to
``made = w min(1, min_k S_k / (w a_k))`` over its inputs k with recipe coefficients a_k. Inputs are drawn
from stock; the smoothed production p̄ moves 1/30 of the way to ``made`` each day, and the producer's input
need (what it orders) is ``p̄ a_k``.

Thrifting (monthly, non-Chinese NdFeB makers): the Dy/Tb a tonne of magnet needs is the recipe's times
theta, which moves toward ``max(1 - dy_thrift_max, (P/P0)^(-dy_thrift_elasticity))`` (P the ex-China Dy
oxide price) with time constant ``dy_thrift_days`` (grain-boundary diffusion and lower-Dy grades take
months); theta never rises above 1.

Allocation (per supplier i and material m): shippable orders Q_e (the backlog, or on licensed edges at most
the licensed volume left) are filled from stock, domestic buyers first (ratio r0 = min(1, S/d0)), then the
rest pro rata (r1 = min(1, (S - d0 r0)/d1)). Shipments leave with the lead times of
:mod:`rareshock.model.network`; each producer's smoothed shipments ō move 1/30 of the way to today's.
"""

from __future__ import annotations

import numpy as np

from rareshock.model.codes import CN, REGIONS, EndUse, Kind, Material
from rareshock.model.network import M
from rareshock.model.numerics import kernel, psum
from rareshock.model.schema import ConfigError

from .market import DY_EX

NDPR, DYTB, SM, NDFEB, SMCO = (int(m) for m in Material)
MATERIAL_INDEX = {"ndpr_oxide": NDPR, "dytb_oxide": DYTB, "sm_oxide": SM, "ndfeb": NDFEB, "smco": SMCO}
EXPORT_REGIONS = ("US", "EU", "JP", "IN", "ROW")


def sizes(rng: np.random.Generator, n: int) -> np.ndarray:
    """Relative sizes of n units (shares summing to 1), moderately unequal (gamma(4) draws)."""
    w = rng.gamma(4.0, 1.0, n)
    return w / w.sum()


# --------------------------------------------------------------------------------------------------
# Kernels
# --------------------------------------------------------------------------------------------------
@kernel
def _shippable(backlog, controlled, licence_left, any_controlled, lim, any_lim, sup_pos, out, demand):
    """Backlog that may leave today (licensed edges: up to the volume left; edges under an export quota or
    a customs hold: up to today's limit ``lim``), and its sum per supplier output (``sup_pos``: the edge's
    supplier as a position in the producers' arrays)."""
    demand[:] = 0.0
    for e in range(backlog.shape[0]):
        b = backlog[e]
        if any_controlled and controlled[e] and licence_left[e] < b:
            b = licence_left[e]
        if any_lim and lim[e] < b:
            b = lim[e]
        out[e] = b
        demand[sup_pos[e]] += b


@kernel
def _produce(
    stock,
    out_rate,
    prod,
    need,
    demand,
    flat,
    tsd,
    cap,
    coef,
    in_flat,
    has_in,
    mat,
    in_mat,
    made_by_mat,
    used_by_mat,
    made_by_pair,
    backlog,
    controlled,
    licence_left,
    any_controlled,
    lim,
    any_lim,
    sup_pos,
    shippable,
):
    _shippable(backlog, controlled, licence_left, any_controlled, lim, any_lim, sup_pos, shippable, demand)
    made_by_mat[:] = 0.0
    used_by_mat[:] = 0.0
    for p in range(flat.shape[0]):
        f = flat[p]
        want = out_rate[f] * tsd[p] + demand[p] - stock[f]
        if want < 0.0:
            want = 0.0
        if want > cap[p]:
            want = cap[p]
        x0 = want * coef[p, 0]
        x1 = want * coef[p, 1]
        r0 = stock[in_flat[p, 0]] / x0 if x0 > 0.0 else 1.0
        r1 = stock[in_flat[p, 1]] / x1 if x1 > 0.0 else 1.0
        frac = r1 if r1 < r0 else r0  # the scarcest input limits output
        if frac > 1.0:
            frac = 1.0
        made = want * frac
        for k in range(2):
            used = made * coef[p, k]
            if has_in[p, k]:
                stock[in_flat[p, k]] -= used
            used_by_mat[in_mat[p, k]] += used
        stock[f] += made
        prod[f] += (made - prod[f]) * (1.0 / 30.0)
        made_by_mat[mat[p]] += made
        made_by_pair[p] = made
        for k in range(2):
            if has_in[p, k]:
                need[in_flat[p, k]] = prod[f] * coef[p, k]


@kernel
def _allocate_and_send(
    stock,
    shippable,
    sup_pos,
    domestic,
    ship,
    backlog,
    transit,
    pipe,
    day,
    lead_sea,
    extra_lead,
    lead_now,
    standing,
    controlled,
    licence_left,
    any_controlled,
    air_freight,
    air_days,
    air_cover,
    need,
    buy_flat,
    out_rate,
    prod_flat,
    sent,
    export_mag,
    dest,
    export_dytb,
    export_order,
    n_regions,
    row,
    at,
):
    n = prod_flat.shape[0]
    d0 = np.zeros(n)
    d1 = np.zeros(n)
    for e in range(shippable.shape[0]):
        if domestic[e]:
            d0[sup_pos[e]] += shippable[e]
        else:
            d1[sup_pos[e]] += shippable[e]
    short = False
    for p in range(n):
        if not (d0[p] + d1[p] <= stock[prod_flat[p]]):
            short = True
            break
    if not short:
        # an input stock driven a rounding error below zero by production also takes the scarce path,
        # which floors every stock at 0 (kept as it was; see ODD 7.3)
        for i in range(stock.shape[0]):
            if stock[i] < 0.0:
                short = True
                break
    if not short:
        for p in range(n):
            stock[prod_flat[p]] -= d0[p] + d1[p]
        for e in range(shippable.shape[0]):
            ship[e] = shippable[e]
    else:
        for i in range(stock.shape[0]):
            if stock[i] < 0.0:
                stock[i] = 0.0
        r0 = np.empty(n)
        r1 = np.empty(n)
        for p in range(n):
            f = prod_flat[p]
            a = stock[f] / d0[p] if d0[p] > 0.0 else 1.0
            if a > 1.0:
                a = 1.0
            left = stock[f] - d0[p] * a
            b = left / d1[p] if d1[p] > 0.0 else 1.0
            if b > 1.0:
                b = 1.0
            r0[p] = a
            r1[p] = b
            x = left - d1[p] * b
            stock[f] = x if not x < 0.0 else 0.0
        for e in range(shippable.shape[0]):
            ship[e] = shippable[e] * (r0[sup_pos[e]] if domestic[e] else r1[sup_pos[e]])
    # shipping: sea (plus customs friction) or air when the buyer is short and air is faster (not parts on
    # standing orders, which come on their supplier's schedule)
    h = pipe.shape[0]
    today = day % h
    sent[:] = 0.0
    for e in range(ship.shape[0]):
        x = ship[e]
        lead = lead_sea[e] + extra_lead[e]
        if (
            air_freight
            and not standing[e]
            and lead_sea[e] > air_days
            and stock[buy_flat[e]] < air_cover[e] * need[buy_flat[e]]
        ):
            lead = extra_lead[e] + air_days
        lead_now[e] = lead
        slot = today + lead  # leads are shorter than the ring
        if slot >= h:
            slot -= h
        pipe[slot, e] += x
        transit[e] += x
        b = backlog[e] - x
        backlog[e] = b if not b < 0.0 else 0.0
        if any_controlled:
            v = licence_left[e] - (x if controlled[e] else 0.0)
            licence_left[e] = v if not v < 0.0 else 0.0
        sent[sup_pos[e]] += x
    for p in range(n):
        f = prod_flat[p]
        out_rate[f] += (sent[p] - out_rate[f]) / 30.0
    # record: China's exports of magnets by destination, and of Dy/Tb oxide
    exp = np.zeros(n_regions)
    for k in range(export_mag.shape[0]):  # China's magnet export relationships
        e = export_mag[k]
        exp[dest[e]] += ship[e]
    dy = np.empty(ship.shape[0])
    for e in range(ship.shape[0]):
        dy[e] = ship[e] * export_dytb[e]
    total = 0.0
    for r in range(n_regions):
        total += exp[r]
    row[at] = total
    for k in range(export_order.shape[0]):
        row[at + 1 + k] = exp[export_order[k]]
    row[at + 1 + export_order.shape[0]] = psum(dy)  # China's Dy/Tb oxide exports


class Producers:
    """Separators and magnet makers: the supply side of the network."""

    COLUMNS = (
        ("cn_magnet_exports_t",)
        + tuple(f"cn_magnet_exports_to_{r.lower()}_t" for r in EXPORT_REGIONS)
        + ("cn_dytb_oxide_exports_t",)
    )

    def __init__(self, model, cfg):
        self.model = model
        self.mm, self.sp = cfg.magnet_makers, cfg.separators
        self.shipping = cfg.shipping
        self.investment = cfg.investment
        self.separators: list[tuple[int, str, str]] = []  # (node, region, name)
        self.makers: list[tuple[int, str, str]] = []  # (node, region, product)

    # ------------------------------------------------------------------ building
    def add_nodes(self, builder) -> None:
        sp, mm, rng = self.sp, self.mm, self.model.rng
        for i, w in enumerate(sizes(rng, sp.cn_separators)):
            cap = {
                NDPR: sp.cn_ndpr_t_per_year * w / 365,
                DYTB: sp.cn_dytb_t_per_year * w / 365,
                SM: sp.cn_sm_t_per_year * w / 365,
            }
            node = builder.add(
                Kind.SEPARATOR, CN, 0.0, capacity=cap, end_use=EndUse.PRODUCER, target_stock_days=sp.target_stock_days
            )
            self.separators.append((node, "CN", f"cn_separator_{i}"))
        for reg in sorted(set(sp.ex_cn_ndpr_t_per_year) | set(sp.ex_cn_dytb_t_per_year)):
            cap = {NDPR: sp.ex_cn_ndpr_t_per_year.get(reg, 0) / 365, DYTB: sp.ex_cn_dytb_t_per_year.get(reg, 0) / 365}
            if sum(cap.values()) > 0:
                node = builder.add(
                    Kind.SEPARATOR,
                    REGIONS.index(reg),
                    0.0,
                    capacity=cap,
                    end_use=EndUse.PRODUCER,
                    target_stock_days=sp.target_stock_days,
                )
                self.separators.append((node, reg, f"{reg.lower()}_separator"))
        # sites: a region where separation may be built (the programme's regions, announced projects) but that
        # has no separator yet gets one with no capacity, so capacity can come later (a world without
        # non-Chinese separation, such as 2010's, builds)
        have = {reg for _, reg, _ in self.separators}
        for reg in self._separation_sites():
            if reg not in have:
                node = builder.add(
                    Kind.SEPARATOR,
                    REGIONS.index(reg),
                    0.0,
                    capacity={NDPR: 0.0, DYTB: 0.0},
                    end_use=EndUse.PRODUCER,
                    target_stock_days=sp.target_stock_days,
                )
                self.separators.append((node, reg, f"{reg.lower()}_separator"))

        def maker(region: str, product: str, cover: float, cap: dict) -> None:
            node = builder.add(
                Kind.MAKER,
                REGIONS.index(region),
                cover,
                capacity=cap,
                end_use=EndUse.PRODUCER,
                target_stock_days=mm.target_stock_days,
            )
            self.makers.append((node, region, product))

        for w in sizes(rng, mm.cn_makers):
            maker("CN", "ndfeb", mm.input_cover_days_cn, {NDFEB: mm.cn_ndfeb_capacity_t_per_year * w / 365})
        n_cn_smco = max(1, mm.cn_makers // 10)
        for _ in range(n_cn_smco):
            maker("CN", "smco", mm.input_cover_days_cn, {SMCO: mm.cn_smco_capacity_t_per_year / n_cn_smco / 365})
        for reg in sorted(set(mm.ndfeb_capacity_t_per_year) | set(mm.smco_capacity_t_per_year)):
            if reg == "CN" or reg not in REGIONS:
                raise ConfigError(f"magnet_makers: region {reg!r} not allowed; allowed: US, JP, EU, IN, ROW")
            k = mm.makers_per_region.get(reg, 1)
            cap = mm.ndfeb_capacity_t_per_year.get(reg, 0.0)
            if cap > 0:
                for _ in range(k):
                    maker(reg, "ndfeb", mm.input_cover_days_ex_cn, {NDFEB: cap / k / 365})
            cap = mm.smco_capacity_t_per_year.get(reg, 0.0)
            if cap > 0:
                maker(reg, "smco", mm.input_cover_days_ex_cn, {SMCO: cap / 365})

    def _separation_sites(self) -> list[str]:
        """Regions where non-Chinese separation capacity may appear: the programme's separation regions
        (share above 0) and, if announced projects are on, their separation projects' regions."""
        inv = self.investment
        regs = {r for r, share in inv.stages["separation"].regions.items() if share > 0}
        if inv.announced_projects:
            regs |= {a.region for a in inv.announced if a.stage == "separation"}
        return sorted(regs)

    def recipe(self) -> np.ndarray:
        r = np.zeros((M, M))
        r[NDFEB, NDPR] = self.mm.ndpr_per_t_ndfeb
        r[NDFEB, DYTB] = self.mm.dytb_per_t_ndfeb
        r[SMCO, SM] = self.mm.sm_per_t_smco
        return r

    def input_cn_share(self, material: int) -> float:
        """Share of a non-Chinese maker's input of ``material`` bought from Chinese separators."""
        return {NDPR: self.mm.ex_cn_ndpr_cn_share, DYTB: self.mm.ex_cn_dytb_cn_share, SM: 1.0}[material]

    def bind(self, net) -> None:
        self.net = net
        # a buyer is short (its orders go by air) below air_trigger_cover_days of need, or below half the
        # stock it holds in a normal day if that is less: a buyer that normally holds few days is not short
        self.air_trigger = np.minimum(
            self.shipping.air_trigger_cover_days, 0.5 * np.maximum(net.cover_days[net.buy] - 1.0, 0.0)
        )
        producers = np.flatnonzero((net.kind == Kind.SEPARATOR) | (net.kind == Kind.MAKER))
        potential = net.cap > 0
        x_seps = np.flatnonzero((net.kind == Kind.SEPARATOR) & (net.region != CN))
        potential[np.ix_(x_seps, [NDPR, DYTB, SM])] = True  # capacity may come from projects
        pn, pm = np.nonzero(potential[producers])
        self.node = producers[pn]
        self.mat = pm.astype(np.int64)
        self.flat = self.node * M + self.mat
        self.cap = net.cap[self.node, pm]
        self.tsd = net.target_stock_days[self.node]
        ins = [np.flatnonzero(net.recipe[m]) for m in pm]
        in_mat = np.array([list(i) + [-1] * (2 - len(i)) for i in ins], dtype=np.int64).reshape(-1, 2)
        self.coef = np.where(in_mat >= 0, net.recipe[pm[:, None], np.maximum(in_mat, 0)], 0.0)
        self.in_flat = self.node[:, None] * M + np.maximum(in_mat, 0)
        self.has_in = self.coef > 0
        self.in_mat = np.maximum(in_mat, 0)
        self.coef0 = self.coef.copy()
        # Dy/Tb input of the non-Chinese NdFeB makers: what thrifting scales
        x_nd = (net.region[self.node] != CN) & (self.mat == NDFEB)
        pos, k = np.nonzero(x_nd[:, None] & (self.in_mat == DYTB) & self.has_in)
        self.thrift_pos, self.thrift_k = pos, k
        self.theta = 1.0
        # today's values
        position = {int(f): p for p, f in enumerate(self.flat)}
        self.sup_pos = np.array([position[int(f)] for f in net.sup_flat], dtype=np.int64)
        self.shippable = np.zeros(net.e)
        self.demand = np.zeros(self.flat.size)
        self.ship_today = np.zeros(net.e)
        self.made = np.zeros(M)
        self.made_by_pair = np.zeros(self.flat.size)  # today's output of each (producer, material) pair
        self.used_in = np.zeros(M)
        self._sent = np.zeros(self.flat.size)
        # China's exports, for the record
        e_mag = (net.mat == NDFEB) | (net.mat == SMCO)
        self.export_mag = np.flatnonzero(net.cn_export & e_mag)
        self.export_dytb = (net.cn_export & (net.mat == DYTB)).astype(float)
        self.export_order = np.array([REGIONS.index(r) for r in EXPORT_REGIONS], dtype=np.int64)
        # China's separators and their configured capacity (NdPr, Dy/Tb, Sm): what a quota scales
        self.cn_seps = np.flatnonzero((net.kind == Kind.SEPARATOR) & (net.region == CN))
        self.cn_sep_cap0 = net.cap[self.cn_seps, :3].copy()
        self.cn_quota: np.ndarray | None = None  # share of capacity by oxide, once a quota is set

    def refresh_capacity(self, net) -> None:
        if self.cn_quota is not None:  # capacities were recomputed (investment): the quota still binds
            net.cap[self.cn_seps, :3] = self.cn_sep_cap0 * self.cn_quota
        self.cap = net.cap_f[self.flat]

    def set_cn_quota(self, materials: list[str], share: float) -> None:
        """China's production quota: Chinese separators' capacity for ``materials`` (oxide names) becomes
        ``share`` of its configured level (1.0 restores it); it binds until changed again."""
        if self.cn_quota is None:
            self.cn_quota = np.ones(3)
        for m in materials:
            self.cn_quota[MATERIAL_INDEX[m]] = share
        self.refresh_capacity(self.net)

    def adapt(self, market, days: float = 30.0) -> None:
        """Monthly thrifting of Dy/Tb by non-Chinese NdFeB makers (module docstring)."""
        if self.thrift_pos.size == 0:
            return
        p = market.p
        target = max(1.0 - p.dy_thrift_max, market.ratio(DY_EX) ** (-p.dy_thrift_elasticity))
        target = min(target, 1.0)
        self.theta += (target - self.theta) * min(days / p.dy_thrift_days, 1.0)
        self.coef[self.thrift_pos, self.thrift_k] = self.coef0[self.thrift_pos, self.thrift_k] * self.theta

    # ------------------------------------------------------------------ phases
    def produce(self) -> None:
        net = self.net
        _produce(
            net.stock_f,
            net.out_rate_f,
            net.prod_rate_f,
            net.need_f,
            self.demand,
            self.flat,
            self.tsd,
            self.cap,
            self.coef,
            self.in_flat,
            self.has_in,
            self.mat,
            self.in_mat,
            self.made,
            self.used_in,
            self.made_by_pair,
            net.backlog,
            net.controlled,
            net.licence_left,
            net.any_controlled,
            self.limits.cap,
            self.limits.on,
            self.sup_pos,
            self.shippable,
        )

    def ship(self, day: int) -> None:
        net, sh = self.net, self.shipping
        _allocate_and_send(
            net.stock_f,
            self.shippable,
            self.sup_pos,
            net.domestic,
            self.ship_today,
            net.backlog,
            net.transit,
            net.pipe,
            day,
            net.lead_sea,
            net.extra_lead,
            net.lead_now,
            net.standing,
            net.controlled,
            net.licence_left,
            net.any_controlled,
            sh.air_freight,
            sh.air_days,
            self.air_trigger,
            net.need_f,
            net.buy_flat,
            net.out_rate_f,
            self.flat,
            self._sent,
            self.export_mag,
            net.dest,
            self.export_dytb,
            self.export_order,
            len(REGIONS),
            self.row,
            self.at,
        )
