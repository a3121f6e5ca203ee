"""What a simulated fleet is: how many stores, how often each sells, when whose links are cut, over how many
worker processes. Frozen data, shared by the command line, the bench and the workers."""

from __future__ import annotations

import math
from dataclasses import dataclass

from novapos.validators import token


@dataclass(frozen=True)
class Outage:
    """From `at_s` seconds after selling starts, for `for_s` seconds, the links of a `share` of the stores are cut
    (every k-th store with k = round(1 / share): the same stores at every outage of that share)."""
    at_s: float
    for_s: float
    share: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.at_s) and self.at_s >= 0):
            raise ValueError(f"an outage starts at 0 s or later, not {self.at_s!r}")
        if not (math.isfinite(self.for_s) and self.for_s > 0):
            raise ValueError(f"an outage lasts more than 0 s, not {self.for_s!r}")
        if not (math.isfinite(self.share) and 0 < self.share <= 1):
            raise ValueError(f"an outage's share of the stores is in (0, 1], not {self.share!r}")

    def cut(self, stores: list[str]) -> list[str]:
        """Which of `stores` this outage cuts."""
        every = max(1, round(1 / self.share))
        return [store for index, store in enumerate(stores, 1) if index % every == 0]


def parse_outages(text: str) -> tuple[Outage, ...]:
    """`AT:FOR:SHARE[,AT:FOR:SHARE...]` (seconds, seconds, a fraction or a percentage): "20:10:0.1" cuts a tenth of
    the stores 20 s into selling, for 10 s. ValueError with the reason for anything else."""
    outages = []
    for part in filter(None, (piece.strip() for piece in text.split(","))):
        fields = part.split(":")
        if len(fields) != 3:
            raise ValueError(f"outage {part!r}: expected AT:FOR:SHARE, e.g. 20:10:0.1 or 20:10:10%")
        at, lasting, share = fields
        try:
            fraction = float(share.removesuffix("%")) / (100 if share.endswith("%") else 1)
            outages.append(Outage(float(at), float(lasting), fraction))
        except ValueError as exc:
            raise ValueError(f"outage {part!r}: {exc}") from None
    return tuple(outages)


@dataclass(frozen=True)
class FleetSpec:
    """`stores` stores named `prefix`0001... of `tenant` (region `region`), each selling every `sale_every_s`,
    its health reported every `health_interval_s` as the real edge does, its catalog followed (`catalog`),
    spread over `processes` worker processes (stores dealt round robin)."""
    stores: int
    sale_every_s: float = 1.0
    outages: tuple[Outage, ...] = ()
    processes: int = 1
    tenant: str = "demo"
    region: str = "north"
    prefix: str = "sim-"
    catalog: bool = True
    health_interval_s: int = 5

    def __post_init__(self) -> None:
        if not 1 <= self.stores <= 100_000:
            raise ValueError(f"stores: 1 to 100000, not {self.stores}")
        if not 1 <= self.processes <= 256:
            raise ValueError(f"processes: 1 to 256, not {self.processes}")
        if not (math.isfinite(self.sale_every_s) and self.sale_every_s >= 0.01):
            raise ValueError(f"a sale every 0.01 s or more, not {self.sale_every_s!r}")
        if not 1 <= self.health_interval_s <= 3600:
            raise ValueError(f"health interval: 1 to 3600 s, not {self.health_interval_s}")
        token("tenant", self.tenant)
        token("region", self.region)
        token("store", self.store_names()[-1])  # the prefix makes names NATS and the hub accept

    def store_names(self) -> list[str]:
        width = max(4, len(str(self.stores)))
        return [f"{self.prefix}{number:0{width}d}" for number in range(1, self.stores + 1)]

    def store_ids(self) -> list[tuple[str, str]]:
        """(tenant, store) of every store: what EmbeddedNats.authorized(stores=...) takes."""
        return [(self.tenant, store) for store in self.store_names()]

    def shares(self) -> list[list[str]]:
        """The stores of each worker process."""
        names = self.store_names()
        return [names[worker::self.processes] for worker in range(min(self.processes, self.stores))]
