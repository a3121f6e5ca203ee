"""The edge's count of events waiting on its leaf node (actors.health.leaf): the local stream past the hub's last
figure, an aged-out start left out, the hub's stale figure standing while it does not answer, "behind" only when the
hub lags what the leaf held a look earlier, and the sentence only once that has lasted. The real leaf and hub:
tests/test_leaf.py."""

from __future__ import annotations

from prometheus_client import REGISTRY

from actors.health.leaf import LeafBacklog


def gauge() -> float | None:
    return REGISTRY.get_sample_value("novapos_edge_leaf_unsourced_events")


def test_counts_what_the_hub_has_not_sourced_and_says_so_only_once_it_lasts() -> None:
    leaf = LeafBacklog(behind_alert_s=30.0)
    leaf.looked(1, 0, clock=0.0)
    assert leaf.status(0.0) == {"leaf_unsourced_events": 0, "leaf_hub_answered_s_ago": None}
    leaf.looked(1, 5, clock=1.0)
    assert leaf.unsourced == 5 and gauge() == 5  # no answer yet: all of it may be waiting
    leaf.answered(5, clock=1.5)
    assert leaf.unsourced == 0 and not leaf.behind() and gauge() == 0
    leaf.looked(1, 6, clock=2.0)  # a sale since the answer: not "behind" (sourced within the next second, as usual)
    assert leaf.unsourced == 1 and not leaf.behind()
    leaf.answered(6, clock=2.1)
    for second in range(3, 40):  # the WAN is cut: the hub's figure stands, a sale a second
        leaf.looked(1, 3 + second, clock=float(second))
    assert leaf.unsourced == 36 and leaf.behind() and gauge() == 36
    status = leaf.status(39.0)
    assert status["leaf_hub_answered_s_ago"] == 36.9
    assert status["leaf_problem"].startswith("36 event(s) on this store's leaf node have not reached the hub for 34 s")
    assert "leaf_problem" not in leaf.status(10.0 + 3.0)  # behind since 5 s: 8 s, not yet 30 s
    leaf.answered(30, clock=40.0)  # catching up: still behind, the clock not reset
    assert leaf.unsourced == 12 and leaf.behind() and "leaf_problem" in leaf.status(40.0)
    leaf.answered(42, clock=41.0)
    assert leaf.unsourced == 0 and not leaf.behind() and "leaf_problem" not in leaf.status(41.0) and gauge() == 0


def test_before_the_hubs_first_answer_the_whole_stream_counts_and_a_hub_without_the_figure_raises_no_alarm() -> None:
    leaf = LeafBacklog(behind_alert_s=5.0)
    leaf.looked(1, 40, clock=0.0)
    leaf.looked(1, 41, clock=1.0)
    assert leaf.status(9.0)["leaf_problem"].startswith("the hub has not answered since this edge started: up to 41")
    leaf.answered(None, clock=10.0)  # a hub older than this edge: it answers, without the figure
    assert leaf.status(20.0) == {"leaf_unsourced_events": None, "leaf_hub_answered_s_ago": 10.0} and gauge() == 0
    assert not leaf.behind()


def test_events_aged_out_of_the_leaf_stream_are_not_counted() -> None:
    leaf = LeafBacklog()
    leaf.answered(0, clock=0.0)  # nothing of this store in the hub's stream (its 14 days passed)
    leaf.looked(101, 120, clock=1.0)  # the leaf kept 101..120 (its 30 days)
    assert leaf.unsourced == 20
    leaf.answered(110, clock=2.0)
    assert leaf.unsourced == 10
