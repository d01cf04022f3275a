"""The rareshock model: the world, its actors and the order of one simulated day.

``RareShockModel.step`` is the one place that says what happens in a day; every line is a phase of one
population (``agents/``) or of the network (:mod:`.network`)::

    1 policy        governments apply today's events and reactions
    2 licences      MOFCOM's review decides (working days); licences expire
    3 production    today's caps from export quotas and customs holds; separators and magnet makers produce
    4 shipping      makers allocate scarce stock and ship (sea, or air for short buyers); quota-bound
                    exports come off the quota
    5 arrivals      goods arrive; programmes, industry and plants use magnets (plants run or idle);
                    every buyer orders up to its cover; stalled buyers switch suppliers; exporters apply
    6 prices        prices move toward what scarcity on each side of the border implies
    7 monthly       investment and the chain's capacities; deals may break down; buyers respond to prices
    8 chips         US chip firms, Chinese buyers and BIS
    9 record        every population writes its columns
"""

from __future__ import annotations

import mesa

from rareshock.agents.automaker import Plants
from rareshock.agents.chips import ChipSector
from rareshock.agents.defense import DefensePrograms
from rareshock.agents.exports import ExportLimits
from rareshock.agents.government import Governments
from rareshock.agents.industry import IndustrialUsers
from rareshock.agents.investment import Investment
from rareshock.agents.licensing import Licensing
from rareshock.agents.market import Market
from rareshock.agents.producers import Producers
from rareshock.agents.sourcing import Sourcing
from rareshock.agents.stockpiles import Stockpiles
from rareshock.model.builder import Builder
from rareshock.model.calendar import Calendar
from rareshock.model.config import ScenarioConfig
from rareshock.model.records import MaterialBalance, MaterialFlows, Records


class RareShockModel(mesa.Model):
    """Rare earths, magnets and chips under export controls, one day per step.

    Args:
        config: a validated :class:`rareshock.model.config.ScenarioConfig`.
        rng: seed (int or ``SeedSequence``) for the model's random number generator; every random draw
            of the model comes from it.
    """

    def __init__(self, config: ScenarioConfig, rng=None):
        super().__init__(rng=rng)
        self.cfg = config
        self.calendar = Calendar(config.scenario.start, config.scenario.end)
        self.n_days = self.calendar.n_days
        self.day = 0
        # the supply network: populations add their nodes, the builder wires who supplies whom
        self.producers = Producers(self, config)
        self.plants = Plants(self, config.automakers)
        self.defense = DefensePrograms(self, config.defense)
        self.industry = IndustrialUsers(self, config)
        builder = Builder(config)
        for population in (self.producers, self.plants, self.defense, self.industry):
            population.add_nodes(builder)
        self.net = builder.build(self.producers)
        for population in (self.producers, self.plants, self.defense, self.industry):
            population.bind(self.net)
        # institutions and markets
        self.sourcing = Sourcing(self, config.sourcing)
        self.licensing = Licensing(self, config.licensing.cn)
        self.exports = ExportLimits(self, config)  # quotas and customs holds
        self.producers.limits = self.exports
        self.market = Market(self, config.prices)
        self.stockpiles = Stockpiles(self)
        self.chips = ChipSector(self, config.chips)
        self.governments = Governments(self, config)
        self.investment = Investment(self, config)
        self.balance = MaterialBalance(self.net, self.producers, self.defense.stockpile, self.stockpiles.reserve)
        self.flows = MaterialFlows(self.net, self.producers, self.plants, self.defense, self.industry)
        self.records = Records(
            self.n_days,
            [
                self.producers,
                self.plants,
                self.defense,
                self.industry,
                self.licensing,
                self.market,
                self.sourcing,
                self.investment,
                self.chips,
                self.balance,
            ]
            + ([self.exports] if self.exports.active else [])  # columns only in scenarios with limits
            + [self.flows],  # last, so that the columns before it keep their places
        )
        self.running = True

    @property
    def start(self):
        return self.calendar.start

    def actor_count(self) -> int:
        """Modelled actors: every node of the network (producers, plants, programmes, industrial users)
        plus the Mesa agents (MOFCOM offices, governments, chip firms and buyers, the programme and its
        projects). The benchmark's plain Mesa loop steps this many agents."""
        return self.net.n + len(self.agents)

    def step(self) -> None:
        day = self.day
        working = self.calendar.working[day]
        ledger = self.balance.end_use
        self.governments.act(day)  # 1. policy
        self.licensing.decide(day, working)  # 2. licence decisions, expiry
        self.exports.before_production(day)  # 3. today's caps from export quotas and customs holds
        self.producers.produce()  #    production
        self.producers.ship(day)  # 4. allocation and shipping
        if self.stockpiles.active:
            self.stockpiles.buy(day)  #    stockpile programmes buy surplus stock
        self.exports.after_shipping(day)  #    quota-bound exports come off the quota
        self.net.receive(day)  # 5. arrivals ...
        self.defense.consume(ledger)  #    programmes use magnets; stockpile releases
        self.industry.consume(ledger)  #    industrial users use magnets
        self.plants.assemble(ledger)  #    plants run, or idle
        self.net.place_orders()  #    every buyer orders up to its cover
        self.sourcing.review(day)  #    stalled buyers move orders
        self.licensing.file_applications(day, working)  #    exporters apply for licences
        self.market.update()  # 6. prices
        if self.calendar.month_start[day]:  # 7. monthly
            self.investment.month(day)
            self.governments.month(day)
            self.producers.adapt(self.market)  #    makers thrift Dy/Tb when it is dear
            self.industry.adapt(self.market)  #    other users buy less when magnets are dear
        self.chips.step(day, working)  # 8. chips
        self.records.write(day)  # 9. record
        self.day += 1
        if self.day >= self.n_days:
            self.running = False
