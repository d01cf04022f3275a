"""Building the supply network: populations add their nodes, the builder wires who supplies whom.

Each population adds its nodes from its config section (:meth:`Builder.add`), in the order the model
lists them (producers, plants, defence programmes, industrial users). The builder then assigns every
buyer's need to suppliers (:func:`assign`): end users to magnet makers, then makers' inputs (the demand
just assigned to them times the recipe) to separators. A buyer in China buys only from Chinese suppliers;
elsewhere its ``cn_share`` goes to Chinese suppliers and the rest to non-Chinese ones. Potential
relationships (zero share, for later switching and offtakes) link every non-Chinese maker to a
non-Chinese separator for each input, and every end user outside China to a maker in its own region.
Finally the network starts in the steady state of its baseline flows.
"""

from __future__ import annotations

import math

import numpy as np

from rareshock.model.codes import CN, MATERIALS, REGIONS, Item, Kind, Material
from rareshock.model.network import Network, NodeSpec
from rareshock.model.schema import ConfigError

NDPR, DYTB, SM, NDFEB, SMCO = (int(m) for m in Material)
_ITEM_OF_MATERIAL = {NDPR: Item.NDPR, DYTB: Item.DYTB, SM: Item.SM, SMCO: Item.SMCO}


class Pool:
    """Suppliers of one material on one side of the border, and the load assigned to each so far."""

    def __init__(self, nodes: list[int], capacity: list[float], regions: list[int], min_suppliers: int = 1):
        self.nodes = nodes
        self.cap = np.array(capacity, dtype=float)
        self.region = np.array(regions, dtype=np.int64)
        self.load = np.zeros(len(nodes))
        self.min_suppliers = min_suppliers

    def assign(self, need: float, region: int) -> list[tuple[int, float]]:
        """Spread ``need`` (t/day) of a buyer in ``region`` over suppliers; returns (node, weight) pairs.

        Suppliers in the buyer's own region come first while they have spare capacity, otherwise those
        with the most spare capacity. A buyer uses at least ``min_suppliers`` of them (its portfolio), and
        more when its need is larger than half a typical supplier's capacity (enough to hold it), each in
        proportion to its spare room."""
        if need <= 0 or not self.nodes:
            return []
        chunk = max(0.5 * float(self.cap.mean()), 1e-9)
        spare = self.cap - self.load
        home = (self.region == region) & (spare > 0)
        enough_home = spare[home].sum() >= need and home.sum() >= self.min_suppliers
        pool = np.flatnonzero(home) if enough_home else np.arange(len(self.nodes))
        k = min(pool.size, max(self.min_suppliers, math.ceil(need / chunk)))
        order = pool[np.argsort(-spare[pool], kind="stable")]
        room = np.cumsum(np.maximum(spare[order], 0.0))
        k = max(k, min(int(np.searchsorted(room, need)) + 1, order.size))  # enough suppliers to hold it
        picks = order[:k]
        room = np.maximum(spare[picks], 0.0)
        w = room / room.sum() if room.sum() > 0 else np.full(k, 1.0 / k)
        self.load[picks] += need * w
        return [(self.nodes[i], float(x)) for i, x in zip(picks, w)]


class Builder:
    """Collects node specs from the populations, then builds the :class:`Network`."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.specs: list[NodeSpec] = []

    def add(self, kind: int, region: int, cover_days: float, **fields) -> int:
        """Add one node (fields of :class:`NodeSpec`); returns its index."""
        self.specs.append(NodeSpec(int(kind), int(region), float(cover_days), **fields))
        return len(self.specs) - 1

    def nodes(self, kind: int, region: int | None = None) -> list[int]:
        return [i for i, s in enumerate(self.specs) if s.kind == kind and (region is None or s.region == region)]

    # ------------------------------------------------------------------ wiring
    def _pool(self, kind: int, m: int, cn: bool) -> Pool:
        ns = [
            i
            for i, s in enumerate(self.specs)
            if s.kind == kind and s.capacity.get(m, 0) > 0 and (s.region == CN) == cn
        ]
        k = self.cfg.sourcing.cn_suppliers_per_buyer if (cn and kind == Kind.MAKER) else 1
        return Pool(ns, [self.specs[i].capacity[m] for i in ns], [self.specs[i].region for i in ns], k)

    def _lead(self, s: int, b: int) -> int:
        sh = self.cfg.shipping
        rs, rb = self.specs[s].region, self.specs[b].region
        if rs == rb:
            return sh.domestic_days
        if rs == CN:
            return sh.sea_days[REGIONS[rb]]
        return sh.ex_cn_days

    def _item(self, m: int, b: int, embedded: bool = False) -> int:
        if m == NDFEB:
            if embedded:
                return Item.NDFEB_IN_PARTS
            return Item.NDFEB_HEAVY if self.specs[b].heavy_grade else Item.NDFEB_LIGHT
        return _ITEM_OF_MATERIAL[m]

    @staticmethod
    def _check_loads(pools: dict, what: str) -> None:
        for (m, cn), p in pools.items():
            for load, cap in zip(p.load, p.cap):
                if load > cap * (1 + 1e-9):
                    side = "CN" if cn else "ex-CN"
                    raise ConfigError(
                        f"{what}: baseline demand for {MATERIALS[m]} on {side} {what} exceeds their "
                        f"capacity ({load * 365:.0f} > {cap * 365:.0f} t/yr); raise the capacity or "
                        f"lower demand"
                    )

    def build(self, producers) -> Network:
        """The network with its relationships, in the steady state of the baseline flows.

        ``producers`` supplies the recipe and the Chinese share of non-Chinese makers' inputs."""
        specs = self.specs
        recipe = producers.recipe()
        net = Network(specs, recipe)
        edges: list[tuple[int, int, int, float]] = []
        embedded: set[int] = set()  # edges whose magnets travel inside China-made parts

        def assign(pools: dict, need: float, b: int, m: int, cn_share: float, assembly: float = 0.0) -> None:
            """``cn_share`` of a buyer's need to Chinese suppliers (``assembly`` of that inside China-made
            parts, the rest as loose magnets), the rest to non-Chinese ones."""
            x_pool = pools[(m, False)]
            cs = 1.0 if specs[b].region == CN or not x_pool.nodes else cn_share
            a = assembly if specs[b].region != CN else 0.0
            for part, frac in ((False, 1.0 - a), (True, a)):
                if frac <= 0:
                    continue
                for s, w in pools[(m, True)].assign(need * cs * frac, specs[b].region):
                    if part:
                        embedded.add(len(edges))
                    edges.append((s, b, m, cs * frac * w))
            if cs < 1.0:
                for s, w in x_pool.assign(need * (1 - cs), specs[b].region):
                    edges.append((s, b, m, (1 - cs) * w))

        # end users buy magnets from makers, largest needs first
        makers = {(m, cn): self._pool(Kind.MAKER, m, cn) for m in (NDFEB, SMCO) for cn in (True, False)}
        end_users = [i for i, s in enumerate(specs) if s.kind >= Kind.PLANT]
        wants = sorted(((specs[b].need[m], b, m) for b in end_users for m in specs[b].need), reverse=True)
        for need, buyer, m in wants:
            assign(makers, need, buyer, m, specs[buyer].cn_share, specs[buyer].assembly_share)
        self._check_loads(makers, "magnet_makers")
        for (m, _), p in makers.items():  # makers' input needs follow the demand assigned to them
            for s, load in zip(p.nodes, p.load):
                net.need[s] = load * recipe[m]
        # makers buy oxides from separators
        seps = {(m, cn): self._pool(Kind.SEPARATOR, m, cn) for m in (NDPR, DYTB, SM) for cn in (True, False)}
        maker_nodes = self.nodes(Kind.MAKER)
        for s_node in maker_nodes:
            for m in (NDPR, DYTB, SM):
                if net.need[s_node, m] > 0:
                    assign(seps, net.need[s_node, m], s_node, m, producers.input_cn_share(m))
        self._check_loads(seps, "separators")
        self._potential_edges(edges, recipe, maker_nodes, end_users)

        sup, buy, mat, share = (list(c) for c in zip(*edges))
        items = [self._item(m, b, k in embedded) for k, (_, b, m, _) in enumerate(edges)]
        net.set_edges(sup, buy, mat, share, [self._lead(s, b) for s, b, _, _ in edges], items)
        net.end_need = net.need.copy()
        for pools in (makers, seps):
            for (m, _), p in pools.items():
                net.prod_rate[p.nodes, m] = p.load
        net.fill_steady_state(0)
        return net

    def _potential_edges(self, edges: list, recipe: np.ndarray, maker_nodes: list[int], end_users: list[int]) -> None:
        """Zero-share relationships that switching and offtakes can later use: every non-Chinese maker to
        a non-Chinese separator (its region's, else the rest of the world's) for each input it lacks, and
        every end user outside China to a maker in its own region."""
        specs = self.specs
        have = {(s, b, m) for s, b, m, _ in edges}
        x_seps = [i for i in self.nodes(Kind.SEPARATOR) if specs[i].region != CN]
        row = REGIONS.index("ROW")
        product = {n: NDFEB if specs[n].capacity.get(NDFEB, 0) > 0 else SMCO for n in maker_nodes}
        for s_node in maker_nodes:
            if specs[s_node].region == CN or not x_seps:
                continue
            home = (
                [c for c in x_seps if specs[c].region == specs[s_node].region]
                or [c for c in x_seps if specs[c].region == row]
                or x_seps
            )
            for m in np.flatnonzero(recipe[product[s_node]] > 0):
                if not any((c, s_node, m) in have for c in x_seps):
                    edges.append((home[0], s_node, int(m), 0.0))
        home_makers: dict[tuple[int, int], list[int]] = {}
        for n in maker_nodes:
            if specs[n].region != CN:
                home_makers.setdefault((specs[n].region, product[n]), []).append(n)
        for b in end_users:
            for m in specs[b].need:
                hm = home_makers.get((specs[b].region, m), [])
                if hm and not any((h, b, m) in have for h in hm):
                    edges.append((hm[0], b, m, 0.0))
