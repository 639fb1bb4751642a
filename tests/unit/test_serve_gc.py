"""The server settles the garbage collector once start-up is done (ADR 0054)."""
import gc

from callflow.entrypoints.commands.serve import YOUNG_GC_THRESHOLD, settle_garbage_collector


def test_start_up_objects_are_frozen_and_young_collections_are_rarer():
    before = gc.get_threshold()
    try:
        settle_garbage_collector()
        assert gc.get_freeze_count() > 10_000  # what the imports built is out of the collector's sight
        assert gc.get_threshold() == (YOUNG_GC_THRESHOLD, before[1], before[2])
        assert YOUNG_GC_THRESHOLD > before[0]
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
