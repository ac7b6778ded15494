"""Hyperband and successive halving on a real cluster: rungs, survivors, carried models, a resumed search."""

import multiprocessing
import time

import pytest
from chaos import hyperband_in_process
from psycopg2 import sql
from search_spaces import HYPERBAND

import dasktrain
from dasktrain.errors import DataError, TableExistsError

# hyperband_schedule(R=4, eta=2), MADlib's: bracket 2 trains 4 configurations 1 iteration, keeps 2 for 2,
# then 1 for 4; bracket 1: 2 for 2, then 1 for 4 (Li et al.'s starts 3); bracket 0: 3 for 4.
BRACKETS = {2: [1, 1, 2, 4], 1: [2, 4], 0: [4, 4, 4]}
SIZES = {s: len(iterations) for s, iterations in BRACKETS.items()}
PASSES = sum(sum(v) for v in BRACKETS.values())


@pytest.fixture(scope="module")
def search(db, client, digits):
    return dasktrain.hyperband(**HYPERBAND, db=db, client=client, progress=False)


def _by_bracket(search):
    keys = sorted(search.results)
    out, start = {}, 0
    for s in (2, 1, 0):
        out[s] = keys[start : start + SIZES[s]]
        start += SIZES[s]
    return out


def test_each_bracket_trains_its_rungs_and_keeps_the_best(search):
    assert len(search.results) == sum(SIZES.values()) == 9
    for s, keys in _by_bracket(search).items():
        assert sorted(search[k].iterations for k in keys) == BRACKETS[s]
        assert sum(search.status[k] == "finished" for k in keys) == 1 if s else 3
    # bracket 2's rung 0: the two with the lowest validation loss after 1 iteration went on
    keys = _by_bracket(search)[2]
    first = {k: search[k].history[0]["validation"]["loss"] for k in keys}
    survivors = {k for k in keys if search[k].iterations > 1}
    assert survivors == set(sorted(first, key=first.get)[:2])
    assert search.passes == PASSES == 26
    assert len(search.visits) == 2 * PASSES  # two parts (a segment on each worker): each iteration trained once


def test_survivors_carry_their_model_over_the_rungs(search):
    winner = next(k for k in _by_bracket(search)[2] if search[k].iterations == 4)
    history = search[winner].history
    assert [h["iteration"] for h in history] == [1, 2, 3, 4]
    visits = sorted((v["iteration"], v["part"], v["segments"]) for v in search.visits if v["mst_key"] == winner)
    assert [(i, p) for i, p, _ in visits] == [(i, p) for i in range(1, 5) for p in (0, 1)]
    assert all(sorted(a + b) == [0, 1] for (_, _, a), (_, _, b) in zip(visits[::2], visits[1::2], strict=True))
    assert history[-1]["validation"]["loss"] < history[0]["validation"]["loss"]


def test_successive_halving_is_one_bracket(db, client, digits):
    halving = dasktrain.successive_halving(**{k: v for k, v in HYPERBAND.items() if k != "eta"}, eta=2, db=db,
                                           client=client, progress=False)  # fmt: skip
    assert sorted(r.iterations for r in halving.results.values()) == BRACKETS[2]
    assert halving.best.iterations == 4


def test_li_schedule_on_dask_dataframes(db, client, digits):
    """schedule="li" sizes the brackets as Li et al. do; train and validation may be dask DataFrames."""
    train, test = dasktrain.read_table(db, HYPERBAND["data"]), dasktrain.read_table(db, HYPERBAND["validation"])
    li = dasktrain.hyperband(**{**HYPERBAND, "data": train, "validation": test}, schedule="li", bracket=1, db=db,
                             client=client, progress=False)  # fmt: skip
    assert sorted(r.iterations for r in li.results.values()) == [2, 2, 4]  # MADlib's bracket 1 starts 2, not 3
    assert sorted(li.status.values()) == ["finished", "stopped", "stopped"]
    assert all(r.history[0]["validation"]["loss"] > 0 for r in li.results.values())
    assert li.passes == 8 and len(li.visits) == 2 * 8
    with pytest.raises(DataError, match="schedule='madlib' or 'li'"):
        dasktrain.hyperband(**HYPERBAND, schedule="paper", db=db)


def test_bad_hyperband_input_is_refused_before_any_work(db, digits, table_name):
    no_validation = {k: v for k, v in HYPERBAND.items() if k != "validation"}
    with pytest.raises(DataError, match="validation= or folds="):
        dasktrain.hyperband(**no_validation, db=db)
    with pytest.raises(DataError, match="bracket=5 is not in the schedule"):
        dasktrain.hyperband(**HYPERBAND, bracket=5, db=db)
    with pytest.raises(DataError, match="needs seed"):
        dasktrain.hyperband(**{**HYPERBAND, "seed": None}, checkpoint=(db, table_name), db=db)
    with pytest.raises(DataError, match="resume=True needs checkpoint"):
        dasktrain.hyperband(**HYPERBAND, resume=True, db=db)
    with pytest.raises(TypeError, match="unexpected keyword argument 'iterations'"):
        dasktrain.hyperband(**HYPERBAND, iterations=3, db=db)


def _rungs_done(db, table):
    with db.cursor() as cur:
        cur.execute("SELECT to_regclass(%s) IS NOT NULL", (table + "_summary",))
        if not cur.fetchone()[0]:
            return 0
        cur.execute(sql.SQL("SELECT rungs_done FROM {}").format(sql.Identifier(table + "_summary")))
        row = cur.fetchone()
        return row[0] if row else 0


@pytest.mark.slow
def test_a_killed_search_resumes_from_its_last_rung(db, client, digits, table_name):
    process = multiprocessing.get_context("spawn").Process(target=hyperband_in_process, args=(db.dsn, table_name))
    process.start()
    deadline = time.monotonic() + 300
    while _rungs_done(db, table_name) < 1 and process.is_alive() and time.monotonic() < deadline:
        time.sleep(0.2)
    process.kill()  # SIGKILL: the search stops where it is, mid-rung
    process.join()
    saved = _rungs_done(db, table_name)
    assert saved in (1, 2), f"the search was to be killed after its first rung (exit code {process.exitcode})"
    with pytest.raises(TableExistsError, match="resume=True"):
        dasktrain.hyperband(**HYPERBAND, checkpoint=(db, table_name), db=db)
    with pytest.raises(DataError, match="other parameters"):
        dasktrain.hyperband(**{**HYPERBAND, "R": 8}, checkpoint=(db, table_name), resume=True, db=db, client=client,
                            progress=False)  # fmt: skip
    resumed = dasktrain.hyperband(**HYPERBAND, checkpoint=(db, table_name), resume=True, db=db, client=client,
                                  progress=False)  # fmt: skip
    assert _rungs_done(db, table_name) == 3
    for s, keys in _by_bracket(resumed).items():
        assert sorted(resumed[k].iterations for k in keys) == BRACKETS[s]
    # The rungs saved before the kill were not trained again: this run made only the later rungs' visits.
    assert 0 < len(resumed.visits) < 2 * PASSES
    assert all(v["iteration"] > 1 for v in resumed.visits)
