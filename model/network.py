"""The supply network as arrays: stock holders (nodes), supply relationships (edges), goods in transit.

Every actor that holds material is a *node* (a row of ``stock``); every supplier→buyer relationship for
one material is an *edge*. The per-day arithmetic (orders, allocation under scarcity, shipping, arrivals)
is NumPy over all edges at once; the agents in ``agents/`` own the decisions that change the arrays
(how much to produce, when a plant idles, when an exporter applies for a licence).

Conservation: material only enters through production and leaves through consumption; everything else
moves between ``stock``, ``backlog``-free shipping and the ``pipe`` of goods in transit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rareshock.model.codes import MATERIALS, REGIONS

NDPR, DYTB, SM, NDFEB, SMCO = range(len(MATERIALS))
M = len(MATERIALS)
CN = REGIONS.index("CN")

# node kinds
SEPARATOR, MAKER, PLANT, DEFENSE, INDUSTRY = range(5)
# controllable items (index into config.CONTROLLABLE)
ITEM_DYTB, ITEM_SM, ITEM_NDPR, ITEM_NDFEB_HEAVY, ITEM_NDFEB_LIGHT, ITEM_SMCO = range(6)

PIPE_DAYS = 160  # ring-buffer length; longer than any customs + sea lead time the schema allows


@dataclass
class NodeSpec:
    """One stock holder as the builder describes it."""

    kind: int
    region: int
    cover_days: float
    need: dict[int, float] = field(default_factory=dict)        # material -> t/day consumed
    capacity: dict[int, float] = field(default_factory=dict)    # material -> t/day producible
    heavy_grade: bool = True
    military: bool = False
    end_use: int = 0                                             # 0 auto, 1 industrial, 2 defence, 3 producer


class Network:
    """Arrays over nodes and edges, plus the transit ring buffer."""

    def __init__(self, nodes: list[NodeSpec], recipe: np.ndarray, target_stock_days: np.ndarray):
        n = len(nodes)
        self.n = n
        self.kind = np.array([s.kind for s in nodes], dtype=np.int8)
        self.region = np.array([s.region for s in nodes], dtype=np.int8)
        self.cover_days = np.array([s.cover_days for s in nodes], dtype=float)
        self.heavy_grade = np.array([s.heavy_grade for s in nodes], dtype=bool)
        self.military = np.array([s.military for s in nodes], dtype=bool)
        self.end_use = np.array([s.end_use for s in nodes], dtype=np.int8)
        self.need = np.zeros((n, M))          # t/day: end users' consumption, producers' input draw
        self.cap = np.zeros((n, M))           # t/day producible
        for i, s in enumerate(nodes):
            for m, v in s.need.items():
                self.need[i, m] = v
            for m, v in s.capacity.items():
                self.cap[i, m] = v
        self.stock = np.zeros((n, M))
        self.recipe = recipe                  # t of input (col) per t of output (row)
        self.target_stock_days = target_stock_days  # per node, for producers' finished goods
        self.end_need = self.need.copy()      # baseline need; the builder re-copies it once producers' input need is set
        self.out_rate = np.zeros((n, M))      # producers' smoothed shipments, t/day

    # ------------------------------------------------------------------ edges
    def set_edges(self, sup, buy, mat, share, lead_sea, item, pipe_days: int = PIPE_DAYS) -> None:
        self.sup = np.asarray(sup, dtype=np.int64)
        self.buy = np.asarray(buy, dtype=np.int64)
        self.mat = np.asarray(mat, dtype=np.int64)
        self.share = np.asarray(share, dtype=float)
        self.lead_sea = np.asarray(lead_sea, dtype=np.int64)
        self.item = np.asarray(item, dtype=np.int64)
        e = self.sup.size
        self.e = e
        self.sup_flat = self.sup * M + self.mat
        self.buy_flat = self.buy * M + self.mat
        self.cn_export = (self.region[self.sup] == CN) & (self.region[self.buy] != CN)
        self.domestic = self.region[self.sup] == self.region[self.buy]
        self.tier_flat = self.sup_flat * 2 + (~self.domestic)      # allocation priority: domestic first
        self.dest = self.region[self.buy].astype(np.int64)
        self.backlog = np.zeros(e)
        self.transit = np.zeros(e)
        self.set_controlled(np.zeros(e, dtype=bool))   # needs a Chinese export licence now
        self.licence_left = np.zeros(e)
        self.licence_exp = np.full(e, -1, dtype=np.int64)
        self.app_open = np.zeros(e, dtype=bool)
        self.blocked = np.zeros(e, dtype=bool)      # exporter has stopped applying (military refusal)
        self.ready_day = np.zeros(e, dtype=np.int64)  # earliest day the exporter can (re)apply
        self.extra_lead = np.zeros(e, dtype=np.int64)  # customs friction on licensed shipments
        self.pipe = np.zeros((pipe_days, e))
        self.cols = np.arange(e)

    def rate(self) -> np.ndarray:
        """Each edge's share of its buyer's need, t/day."""
        return self.need.ravel()[self.buy_flat] * self.share

    def fill_steady_state(self, day: int) -> None:
        """The state at the start of ``day`` in a long-running steady state: each end user holds
        ``cover_days - 1`` days of need (it receives one day and uses one day), the pipeline holds the
        arrivals due on ``day`` .. ``day + lead - 1``, yesterday's orders wait to ship, and producers hold
        ``target_stock_days`` of their shipments."""
        rate = self.rate()
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

    # ------------------------------------------------------------------ daily mechanics
    def place_orders(self, rate: np.ndarray) -> np.ndarray:
        """Order-up-to policy per edge: stock share + backlog + transit up to (cover + lead) days."""
        position = self.stock.ravel()[self.buy_flat] * self.share + self.backlog + self.transit
        target = rate * (self.cover_days[self.buy] + self.lead_sea)
        order = np.maximum(target - position, 0.0)
        self.backlog += order
        return order

    @property
    def any_controlled(self) -> bool:
        return self._any_controlled

    def set_controlled(self, controlled: np.ndarray) -> None:
        self.controlled = controlled
        self._any_controlled = bool(controlled.any())

    def shippable(self) -> np.ndarray:
        """Backlog that may leave: all of it, or for licensed edges up to the licensed volume."""
        if not self._any_controlled:
            return self.backlog.copy()
        return np.where(self.controlled, np.minimum(self.backlog, self.licence_left), self.backlog)

    def allocate(self, shippable: np.ndarray) -> np.ndarray:
        """Suppliers fill shippable backlog from finished stock: domestic buyers first, then the rest
        pro rata (licensed exports and contracts)."""
        stock = self.stock.ravel()
        demand = np.bincount(self.tier_flat, shippable, minlength=2 * stock.size)
        d0, d1 = demand[0::2], demand[1::2]
        total = d0 + d1
        if (total <= stock).all():           # no supplier is short: everyone gets what may ship
            stock -= total
            return shippable.copy()
        ratio = np.zeros(2 * stock.size)
        r0 = np.minimum(np.divide(stock, d0, out=np.ones_like(stock), where=d0 > 0), 1.0)
        left = stock - d0 * r0
        r1 = np.minimum(np.divide(left, d1, out=np.ones_like(stock), where=d1 > 0), 1.0)
        ratio[0::2], ratio[1::2] = r0, r1
        np.maximum(left - d1 * r1, 0.0, out=stock)   # the max guards against -1e-17 rounding
        return shippable * ratio[self.tier_flat]

    def send(self, ship: np.ndarray, lead: np.ndarray, day: int) -> None:
        h = self.pipe.shape[0]
        self.pipe.ravel()[((day + lead) % h) * self.e + self.cols] += ship
        self.transit += ship
        self.backlog -= ship
        np.maximum(self.backlog, 0.0, out=self.backlog)
        if self.any_controlled:
            self.licence_left -= np.where(self.controlled, ship, 0.0)
            np.maximum(self.licence_left, 0.0, out=self.licence_left)

    def receive(self, day: int) -> np.ndarray:
        slot = day % self.pipe.shape[0]
        arr = self.pipe[slot].copy()
        self.pipe[slot] = 0.0
        self.transit -= arr
        self.stock.ravel()[:] += np.bincount(self.buy_flat, arr, minlength=self.n * M)
        return arr

    def consume(self, flat: np.ndarray) -> np.ndarray:
        """End users at ``flat`` (node*M + material) use what they need or what they have."""
        stock = self.stock.ravel()
        used = np.minimum(stock[flat], self.need.ravel()[flat])
        stock[flat] -= used
        return used

    def transit_by_material(self) -> np.ndarray:
        return np.bincount(self.mat, self.transit, minlength=M)
