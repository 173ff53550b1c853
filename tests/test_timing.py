"""The stage stopwatch behind run.log's timing table."""

import time

import pytest

from schurjax.timing import Stopwatch, process_age, read_table


def test_stages_accumulate_and_their_shares_add_up():
    stopwatch = Stopwatch()
    with stopwatch("writing") as first:
        time.sleep(0.02)
    with stopwatch("fixed points"):
        time.sleep(0.01)
    with stopwatch("writing") as second:
        time.sleep(0.02)
    assert first.seconds >= 0.02 and second.seconds >= 0.02
    assert stopwatch.seconds["writing"] == first.seconds + second.seconds
    stages = read_table(stopwatch.table(startup=1.0))
    assert list(stages) == ["start-up", "writing", "fixed points", "other", "total"]
    total = stages["total"][0]
    # the table is printed to 0.01 s and 0.1 %: every line within that rounding of the recorded time
    assert stages["start-up"][0] == 1.0 and total == pytest.approx(1.0 + stopwatch.elapsed, abs=0.02)
    assert sum(seconds for name, (seconds, _) in stages.items() if name != "total") == pytest.approx(total, abs=0.03)
    # a total rounded by up to 0.005 s moves a share of about 100 / 1.1 s by up to 0.5 %
    assert stages["start-up"][1] == pytest.approx(100 / total, abs=0.5)


def test_the_table_lists_ordered_stages_first_in_their_order():
    stopwatch = Stopwatch(order=("training", "subspace diagnostics", "writing"))
    for stage in ("held-out set", "subspace diagnostics", "evaluation", "training"):
        with stopwatch(stage):
            pass
    assert list(read_table(stopwatch.table())) == [
        "training", "subspace diagnostics", "held-out set", "evaluation", "other", "total",
    ]


def test_a_stage_that_raises_is_still_timed():
    stopwatch = Stopwatch()
    with pytest.raises(RuntimeError), stopwatch("training"):
        raise RuntimeError("interrupted")
    assert list(stopwatch.seconds) == ["training"]
    assert "start-up" not in stopwatch.table()


def test_the_process_age_counts_from_before_this_test():
    age = process_age()
    if age is None:
        pytest.skip("no /proc on this system")
    # this interpreter has at least imported pytest and this module by now, and not run for a day
    assert 0.0 < age < 86_400
    time.sleep(0.05)
    assert process_age() >= age + 0.04


def test_a_table_is_read_back_from_a_log_around_it():
    stopwatch = Stopwatch()
    with stopwatch("random controls"):
        time.sleep(0.01)
    log = f"[INFO] - wrote outputs/x in 0.1 s total\n[INFO] - time per stage:\n{stopwatch.table(startup=2.5)}\n"
    stages = read_table(log)
    assert list(stages) == ["start-up", "random controls", "other", "total"]
    assert stages["start-up"] == (2.5, pytest.approx(100 * 2.5 / stages["total"][0], abs=0.1))
    assert stages["random controls"][0] == pytest.approx(stopwatch.seconds["random controls"], abs=0.005)
