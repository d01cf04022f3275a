"""The supply network as arrays: stock holders (nodes), supply relationships (edges), goods in transit.

Every actor that holds material is a *node* (a row of ``stock``); every supplier→buyer relationship for
one material is an *edge*. The network carries what all buyers and sellers share: the order book (an
order-up-to policy per edge), shipping (lead times by sea, air and customs) and arrivals. Who produces,
who gets what under scarcity, who idles and who applies for a licence are decisions of the populations in
``agents/``, which change these arrays through their own phase methods.

Conservation: material only enters through production and leaves through consumption; everything else
moves between ``stock`` and the ``pipe`` of goods in transit (``transit`` is the pipe's sum per edge).

Maths (per edge e with supplier s, buyer b, material m, share σ_e, sea lead L_e):

- rate r_e = n_{b,m} σ_e (the buyer's need placed on the edge, t/day);
- order-up-to: position P_e = S_{b,m} σ_e + B_e + T_e, target r_e (c_b + ℓ_e) with ℓ_e the lead time of
  the mode the edge ships by today (below), order max(target − P_e, 0) added to the backlog B_e. Shipping
  by air shortens the pipeline the buyer needs, so expediting never turns into ordering more;
- standing orders (edges whose magnets arrive inside China-made parts, ``Item.NDFEB_IN_PARTS``): the edge
  orders its rate, max(r_e − B_e, 0), whatever the buyer's stock. Parts come on their supplier's schedule,
  a plant cannot make up for missing loose magnets by taking more China-made sub-assemblies, and what a
  sub-assembly supplier fails to deliver one day is not caught up later;
- a shipment x_e leaves on day t and arrives on day t + ℓ_e, with ℓ_e = L_e + X_e by sea (X_e customs
  friction on licensed edges) or a_air + X_e by air when the buyer's stock is below
  ``air_trigger_cover_days`` of need and air is faster (``shipping.air_freight``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rareshock.model.codes import CN, MATERIALS, Item
from rareshock.model.numerics import kernel

M = len(MATERIALS)
PIPE_DAYS = 160  # ring-buffer length; longer than any customs + sea lead time the schema allows


@dataclass
class NodeSpec:
    """One stock holder as a population describes it to the builder."""

    kind: int
    region: int
    cover_days: float
    need: dict[int, float] = field(default_factory=dict)  # material -> t/day consumed
    capacity: dict[int, float] = field(default_factory=dict)  # material -> t/day producible
    heavy_grade: bool = True
    military: bool = False
    end_use: int = 0
    cn_share: float = 1.0  # end users: share of need bought from Chinese suppliers at the start
    assembly_share: float = 0.0  # of that Chinese share, the part arriving inside China-made parts
    target_stock_days: float = 0.0  # producers: finished-goods target


# --------------------------------------------------------------------------------------------------
# Kernels (one day's arithmetic over all edges; see the module docstring for the maths)
# --------------------------------------------------------------------------------------------------
@kernel
def _place_orders(
    need_flat, stock_flat, buy_flat, buy, share, standing, backlog, transit, cover_days, lead_now, rate_out
):
    for e in range(share.shape[0]):
        rate = need_flat[buy_flat[e]] * share[e]
        rate_out[e] = rate
        if standing[e]:
            order = rate - backlog[e]
        else:
            position = stock_flat[buy_flat[e]] * share[e] + backlog[e] + transit[e]
            order = rate * (cover_days[buy[e]] + lead_now[e]) - position
        if order > 0.0:
            backlog[e] += order


@kernel
def _rate(need_flat, buy_flat, share, out):
    for e in range(share.shape[0]):
        out[e] = need_flat[buy_flat[e]] * share[e]


@kernel
def _receive(pipe, slot, transit, stock_flat, buy_flat, arrivals):
    n = stock_flat.shape[0]
    add = np.zeros(n)
    for e in range(transit.shape[0]):
        a = pipe[slot, e]
        arrivals[e] = a
        pipe[slot, e] = 0.0
        transit[e] -= a
        add[buy_flat[e]] += a
    for i in range(n):
        stock_flat[i] += add[i]


@kernel
def consume_kernel(stock_flat, need_flat, flat, group, mat, used, used_by_group, ledger):
    used_by_group[:] = 0.0
    for k in range(flat.shape[0]):
        i = flat[k]
        u = min(stock_flat[i], need_flat[i])
        used[k] = u
        stock_flat[i] -= u
        used_by_group[group[k]] += u
        ledger[mat[k]] += u


@kernel
def _balance(stock_f, holders, stockpile, mat, transit, made, used_in, end_use, row, at):
    """The material balance into ``row`` from ``at``: for each material, produced, consumed (inputs plus
    end use), stock (nodes in order, then the stockpile) and in transit; ``end_use`` is reset.
    ``holders[j]`` lists the flat entries that can ever hold material j (all others stay exactly 0, so
    leaving them out of the in-order sum changes nothing)."""
    m = stockpile.shape[0]
    held = np.zeros(m)
    moving = np.zeros(m)
    for k in range(holders.shape[1]):
        for j in range(m):
            i = holders[j, k]
            if i >= 0:
                held[j] += stock_f[i]
    for e in range(mat.shape[0]):
        moving[mat[e]] += transit[e]
    for j in range(m):
        row[at + 4 * j] = made[j]
        row[at + 4 * j + 1] = used_in[j] + end_use[j]
        row[at + 4 * j + 2] = held[j] + stockpile[j]
        row[at + 4 * j + 3] = moving[j]
        end_use[j] = 0.0


class Network:
    """Arrays over nodes and edges, plus the transit ring buffer and the order book."""

    def __init__(self, nodes: list[NodeSpec], recipe: np.ndarray):
        n = len(nodes)
        self.n = n
        self.kind = np.array([s.kind for s in nodes], dtype=np.int8)
        self.region = np.array([s.region for s in nodes], dtype=np.int8)
        self.cover_days = np.array([s.cover_days for s in nodes], dtype=float)
        self.heavy_grade = np.array([s.heavy_grade for s in nodes], dtype=bool)
        self.military = np.array([s.military for s in nodes], dtype=bool)
        self.end_use = np.array([s.end_use for s in nodes], dtype=np.int8)
        self.cn_share = np.array([s.cn_share for s in nodes], dtype=float)
        self.target_stock_days = np.array([s.target_stock_days for s in nodes], dtype=float)
        self.need = np.zeros((n, M))  # t/day: end users' consumption, producers' input draw
        self.cap = np.zeros((n, M))  # t/day producible
        for i, s in enumerate(nodes):
            for m, v in s.need.items():
                self.need[i, m] = v
            for m, v in s.capacity.items():
                self.cap[i, m] = v
        self.stock = np.zeros((n, M))
        self.recipe = recipe  # t of input (col) per t of output (row)
        self.end_need = self.need.copy()  # baseline need (re-copied once producers' input need is set)
        self.out_rate = np.zeros((n, M))  # producers' smoothed shipments, t/day
        self.prod_rate = np.zeros((n, M))  # producers' smoothed production, t/day
        # flat views (node * M + material) for the kernels; the 2-D arrays are only ever changed in place
        self.stock_f, self.need_f, self.cap_f = self.stock.ravel(), self.need.ravel(), self.cap.ravel()
        self.out_rate_f, self.prod_rate_f = self.out_rate.ravel(), self.prod_rate.ravel()

    # ------------------------------------------------------------------ edges
    def set_edges(self, sup, buy, mat, share, lead_sea, item, pipe_days: int = PIPE_DAYS) -> None:
        self.sup = np.asarray(sup, dtype=np.int64)
        self.buy = np.asarray(buy, dtype=np.int64)
        self.mat = np.asarray(mat, dtype=np.int64)
        self.share = np.asarray(share, dtype=float)
        self.lead_sea = np.asarray(lead_sea, dtype=np.int64)
        self.lead_now = self.lead_sea.copy()  # the lead time of the mode in use (set when shipping)
        self.item = np.asarray(item, dtype=np.int64)
        # standing orders: magnets inside China-made parts come with the parts, on the sub-assembly
        # supplier's schedule, and do not make up for a shortage of loose magnets
        self.standing = self.item == Item.NDFEB_IN_PARTS
        e = self.sup.size
        self.e = e
        self.sup_flat = self.sup * M + self.mat
        self.buy_flat = self.buy * M + self.mat
        self.cn_export = (self.region[self.sup] == CN) & (self.region[self.buy] != CN)
        self.domestic = self.region[self.sup] == self.region[self.buy]
        self.dest = self.region[self.buy].astype(np.int64)
        self.backlog = np.zeros(e)
        self.transit = np.zeros(e)
        self.arrivals = np.zeros(e)  # what arrived today, by edge
        self.order_rate = np.zeros(e)  # the rates today's orders were placed at
        self.pipe = np.zeros((pipe_days, e))
        self._rate = np.zeros(e)
        # licensing state of each relationship (decided by agents/licensing.py)
        self.controlled = np.zeros(e, dtype=bool)  # needs a Chinese export licence now
        self.any_controlled = False
        self.licence_left = np.zeros(e)
        self.licence_exp = np.full(e, -1, dtype=np.int64)
        self.extra_lead = np.zeros(e, dtype=np.int64)  # customs friction on licensed shipments

    def set_controlled(self, controlled: np.ndarray) -> None:
        self.controlled = controlled
        self.any_controlled = bool(controlled.any())

    # ------------------------------------------------------------------ the order book
    def rate(self) -> np.ndarray:
        """Each edge's share of its buyer's need, t/day (recomputed on every call)."""
        _rate(self.need_f, self.buy_flat, self.share, self._rate)
        return self._rate

    def place_orders(self) -> None:
        """Every buyer orders up to (cover + lead) days of each edge's rate (module docstring)."""
        _place_orders(
            self.need_f,
            self.stock_f,
            self.buy_flat,
            self.buy,
            self.share,
            self.standing,
            self.backlog,
            self.transit,
            self.cover_days,
            self.lead_now,
            self.order_rate,
        )

    # ------------------------------------------------------------------ transit
    def receive(self, day: int) -> None:
        """Today's arrivals move from the pipe into the buyers' stock (``arrivals`` holds them by edge)."""
        _receive(self.pipe, day % self.pipe.shape[0], self.transit, self.stock_f, self.buy_flat, self.arrivals)

    def consumption_entries(self, groups: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The (node, material) pairs end users in ``groups`` (arrays of nodes, one per group) consume, in
        group then node order: flat entries, their group, their material, and the baseline need by group."""
        flat, grp = [], []
        for g, nodes in enumerate(groups):
            for n in nodes:
                for m in np.flatnonzero(self.end_need[n] > 0):
                    flat.append(n * M + m)
                    grp.append(g)
        flat_a, grp_a = np.array(flat, dtype=np.int64), np.array(grp, dtype=np.int64)
        need = np.bincount(grp_a, self.end_need.ravel()[flat_a], minlength=len(groups))
        return flat_a, grp_a, flat_a % M, need

    def consume(
        self,
        flat: np.ndarray,
        group: np.ndarray,
        mat: np.ndarray,
        used: np.ndarray,
        used_by_group: np.ndarray,
        ledger: np.ndarray,
    ) -> None:
        """End users at ``flat`` (node*M + material ``mat``) use what they need or what they have: ``used``
        by entry, summed by ``group`` into ``used_by_group`` and by material into ``ledger`` (in entry
        order)."""
        consume_kernel(self.stock_f, self.need_f, flat, group, mat, used, used_by_group, ledger)

    def record_balance(self, stockpile, made, used_in, end_use, row, at) -> None:
        """Write the material balance (see :class:`rareshock.model.records.MaterialBalance`)."""
        if not hasattr(self, "_holders"):
            can = (self.cap > 0) | (self.need > 0) | (self.stock > 0)
            can[self.sup, self.mat] = True  # suppliers (capacity may come later)
            can[self.buy, self.mat] = True  # buyers on every relationship
            lists = [np.flatnonzero(can[:, j]) * M + j for j in range(M)]
            width = max(len(x) for x in lists)
            self._holders = np.full((M, width), -1, dtype=np.int64)
            for j, x in enumerate(lists):
                self._holders[j, : len(x)] = x
        _balance(self.stock_f, self._holders, stockpile, self.mat, self.transit, made, used_in, end_use, row, at)

    # ------------------------------------------------------------------ the start
    def fill_steady_state(self, day: int) -> None:
        """The state at the start of ``day`` in a long-running steady state: each end user holds
        ``cover_days - 1`` days of need (it receives one day and uses one day), the pipeline holds the
        arrivals due on ``day`` .. ``day + lead - 1``, yesterday's orders wait to ship, and producers hold
        ``target_stock_days`` of their shipments."""
        rate = self.rate().copy()
        self.stock[:] = self.need * np.maximum(self.cover_days - 1.0, 0.0)[:, None]
        self.pipe[:] = 0.0
        h = self.pipe.shape[0]
        for lead in np.unique(self.lead_sea):
            cols = np.flatnonzero(self.lead_sea == lead)
            for j in range(lead):
                self.pipe[(day + j) % h, cols] += rate[cols]
        self.transit[:] = rate * self.lead_sea
        self.backlog[:] = rate
        flow = np.bincount(self.sup_flat, rate, minlength=self.n * M).reshape(self.n, M)
        self.out_rate[:] = flow
        self.stock += flow * self.target_stock_days[:, None]
