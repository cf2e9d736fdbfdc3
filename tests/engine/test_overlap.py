import threading
import time

import pytest

from dcanalysis.engine.overlap import overlapped


def test_outputs_come_in_order_and_the_work_runs_on_one_other_thread():
    threads = set()

    def work(i):
        threads.add(threading.get_ident())
        time.sleep(0.01 * (3 - i % 3))  # later items finish faster: order must not follow completion
        return i * i

    assert list(overlapped(work, range(7))) == [i * i for i in range(7)]
    assert len(threads) == 1 and threading.get_ident() not in threads


def test_the_next_item_is_made_while_the_current_one_runs():
    log = []

    def items():
        for i in range(3):
            log.append(f"made {i}")
            yield i

    def work(i):
        time.sleep(0.05)  # long enough for the caller to make the next item meanwhile
        log.append(f"done {i}")
        return i

    assert list(overlapped(work, items())) == [0, 1, 2]
    assert log.index("made 1") < log.index("done 0") and log.index("made 2") < log.index("done 1")
    log.clear()
    assert list(overlapped(work, items(), ahead=0)) == [0, 1, 2]
    assert log == ["made 0", "done 0", "made 1", "done 1", "made 2", "done 2"]


def test_a_failure_is_raised_at_its_item_and_later_items_do_not_run():
    ran = []

    def work(i):
        ran.append(i)
        if i == 1:
            raise ValueError("item 1 is bad")
        time.sleep(0.02)
        return i

    out = overlapped(work, range(10), ahead=1)
    assert next(out) == 0
    with pytest.raises(ValueError, match="item 1 is bad"):
        next(out)
    assert max(ran) <= 2  # item 2 may have been queued (and run) behind item 1, nothing after it
    with pytest.raises(ValueError, match="ahead=-1"):
        list(overlapped(work, [], ahead=-1))


def test_the_worker_shares_the_callers_cuda_graph_trees():
    # inductor's CUDA-graph trees live in per-thread objects a plain thread lacks; a network compiled with CUDA
    # graphs and called on the worker failed on them (torch 2.11) until the worker used the caller's
    import torch._dynamo  # noqa: F401  (the state is looked up only where torch.compile is in use)
    import torch._inductor.cudagraph_trees as trees

    from dcanalysis.engine.overlap import TORCH_THREAD_OBJECTS, torch_thread_state

    mine = torch_thread_state()
    assert set(mine) == set(TORCH_THREAD_OBJECTS)
    seen = list(overlapped(lambda _: {k: trees.get_obj(trees.local, k) for k in TORCH_THREAD_OBJECTS}, range(2)))
    assert all(all(s[k] is mine[k] for k in mine) for s in seen)


def test_a_caller_thread_that_never_used_inductor_gets_trees_to_share():
    import threading

    import torch._dynamo  # noqa: F401
    import torch._inductor.cudagraph_trees as trees

    from dcanalysis.engine.overlap import TORCH_THREAD_OBJECTS, torch_thread_state

    got = {}

    def caller():  # a fresh thread: inductor's module was imported on another one
        mine = torch_thread_state()
        seen = list(overlapped(lambda _: {k: trees.get_obj(trees.local, k) for k in TORCH_THREAD_OBJECTS}, [0]))
        got["ok"] = set(mine) == set(TORCH_THREAD_OBJECTS) and all(seen[0][k] is mine[k] for k in mine)

    t = threading.Thread(target=caller)
    t.start()
    t.join()
    assert got["ok"]
