"""The garbage collector while a process loads its modules (core/startup.py)."""

import gc

import pytest

from ingest_pipeline.core import startup


@pytest.fixture
def collector(monkeypatch):
    """A process that has frozen nothing yet; the collector's state is put back afterwards."""
    monkeypatch.setattr(startup, "_frozen", False)
    gc.unfreeze()  # what an earlier command line call in this test process froze
    was_enabled = gc.isenabled()
    gc.enable()
    yield
    gc.unfreeze()
    (gc.enable if was_enabled else gc.disable)()


def test_the_collector_is_paused_inside_and_runs_again_after(collector):
    with startup.collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_what_was_loaded_is_frozen_once_and_later_garbage_stays_collectable(collector):
    with startup.collector_paused():
        loaded = [[] for _ in range(1000)]  # long-lived objects a module leaves behind
    frozen = gc.get_freeze_count()
    assert frozen >= len(loaded)
    startup.modules_loaded()  # a second run in the same process (a backfill)
    assert gc.get_freeze_count() == frozen


def test_inside_a_caller_that_paused_it_the_caller_resumes_it(collector):
    gc.disable()  # as the command line does before importing a command's modules
    with startup.collector_paused():
        pass
    assert not gc.isenabled() and gc.get_freeze_count() == 0
    startup.modules_loaded()
    assert gc.isenabled() and gc.get_freeze_count() > 0


def test_the_collector_runs_again_when_loading_fails(collector):
    with pytest.raises(ImportError), startup.collector_paused():
        raise ImportError("a module that cannot be imported")
    assert gc.isenabled()
