"""Mirror policy metrics: what `MirrorPolicy` refuses and hides, as `tarhold_policy_*` series."""

from __future__ import annotations

from registry.domain.mirror_policy import REASON_KINDS, PolicyEvents
from registry.http.metrics import metrics


class MetricsPolicyEvents(PolicyEvents):
    """Counts refusals and sets the hidden-versions gauge; every reason's series exists from the start."""

    def __init__(self) -> None:
        m = metrics()
        self._refused = {kind: m.policy_refused.labels(kind) for kind in REASON_KINDS}
        self._hidden = {kind: m.policy_hidden.labels(kind) for kind in REASON_KINDS}
        for kind in REASON_KINDS:
            self._refused[kind].inc(0)
            self._hidden[kind].set(0)

    def refused(self, kind: str) -> None:
        self._refused[kind].inc()

    def hidden(self, totals: dict[str, int]) -> None:
        for kind, gauge in self._hidden.items():
            gauge.set(totals.get(kind, 0))
