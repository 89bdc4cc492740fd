"""The CUDA emulator itself (csrc/emu/, built by tools/emu_build.sh): its semantics on kernels
whose results are known, and every rule it checks, on kernels that break one (csrc/emu/emu_selftest.cu).
The ops' CUDA kernels run under it through the "cuda" variants of the op tests (conftest)."""
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from sal_ext import _ext, ops

pytestmark = pytest.mark.skipif(not _ext.cuda_emulated(), reason="needs the emulated build (tools/emu_build.sh)")

C = _ext._C


def _sanitizer() -> str:
    """The emulated build's sanitizer ("", "address", "thread"); "" in a build without the emulator
    (the skip marks below are evaluated at collection, also there)."""
    return getattr(C, "emu_sanitizer", lambda: "")()
BLOCKS, N = 24, 128


def test_collectives_shared_memory_and_atomics():
    r = np.array(C.emu_selftest("collectives"))
    out = r[: BLOCKS * N * 8].reshape(BLOCKS, N, 8)
    order = r[BLOCKS * N * 8:].astype(int)
    tid = np.arange(N)
    lane = tid % 32
    # warp sums of s_vals[(tid + 1) % N] + dyn[tid] = 3 tid + 1 (wrapping at N), on lane 0
    vals = (tid + 1) % N + 2 * tid
    want_sum = np.where(lane == 0, np.add.reduceat(vals, np.arange(0, N, 32))[tid // 32], 0)
    for b in range(BLOCKS):
        o = out[b]
        np.testing.assert_array_equal(o[:, 0], want_sum)
        np.testing.assert_array_equal(o[:, 1], np.where(lane >= 1, lane - 1, lane))  # shfl_up by 1
        np.testing.assert_array_equal(o[:, 2], lane ^ 3)  # shfl_xor
        np.testing.assert_array_equal(o[:, 3], 50)  # shfl from lane 5
        np.testing.assert_array_equal(o[:, 4], 11)  # ballot of lane % 3 == 0
        np.testing.assert_array_equal(o[:, 5], 3)  # any (lane 7) + 2 * all
        np.testing.assert_array_equal(o[:, 6], np.where(lane < 16, np.minimum(lane + 1, 15), -1))  # width 16
        np.testing.assert_array_equal(o[:, 7], N)  # shared-memory atomic count of the block
    # the blocks ran in a shuffled order, each once
    assert sorted(order) == list(range(BLOCKS)) and list(order) != list(range(BLOCKS))


def test_shared_memory_is_poisoned_at_block_start():
    # each block reads its static shared array before writing it: NaN (0xFF bytes), never
    # the value 1.0 the previous block left there
    r = np.array(C.emu_selftest("read_before_write"))[: 2 * N]
    assert np.isnan(r).all()
    count, size = C.emu_static_shared()
    assert count >= 20 and size > 10000  # the kernels' static __shared__ variables were found


@pytest.mark.parametrize("case,message", [
    ("missing_barrier", r"(exited while \d+ thread\(s\) of its block wait at __syncthreads \(emu_selftest.cu:\d+\)"
                        r"|reached __syncthreads \(emu_selftest.cu:\d+\) after .* exited: every thread of the block)"),
    ("divergent_barrier", r"reached __syncthreads \(emu_selftest.cu:\d+\) while \d+ thread\(s\) wait at another"),
    ("partial_warp", r"deadlock: every live thread of the block waits .*__shfl_down_sync \(emu_selftest.cu:\d+\) "
                     r"with mask 0xffffffff for lanes 16-31"),
    # (lanes 16-31 may have completed their own group and exited before lanes 0-15 arrive: then
    # the first lane to arrive finds a lane of its mask gone; which, the schedule decides)
    ("mask_mismatch", r"(every lane named by a collective's mask must pass the same mask"
                      r"|lane \d+ calls __shfl_xor_sync \(emu_selftest.cu:\d+\) with mask 0xffffffff but lane "
                      r"\d+ has exited)"),
    ("not_in_mask", r"lane 31 calls __shfl_sync \(emu_selftest.cu:\d+\) with mask 0x0000ffff, which does not name it"),
    ("block_too_large", r"invalid block \(1025,1,1\): at most 1024 threads"),
    ("empty_grid", r"invalid grid \(0,1,1\)"),
    ("too_much_shared", r"65536 bytes of dynamic shared memory"),
    ("stream", r"stream 0 only"),
])
def test_rule_violations_raise_naming_the_kernel(case, message):
    with pytest.raises(RuntimeError, match=r"sal_ext\.emu_selftest: CUDA error in kernel launch: .*kernel \w+") as e:
        C.emu_selftest(case)
    assert len(str(e.value).splitlines()) == 1
    assert re.search(message, str(e.value)), str(e.value)


def test_dynamic_shared_overflow_is_caught():
    if _sanitizer() != "address":  # the canary after the launch's bytes
        with pytest.raises(RuntimeError, match=r"wrote past the 1024 bytes of dynamic shared memory the launch asked for"):
            C.emu_selftest("dynamic_overflow")
        return
    # under ASan the dynamic shared memory has exactly the launch's size: ASan stops the process
    r = _run_extension("_C.emu_selftest('dynamic_overflow')")
    assert r.returncode != 0 and "heap-buffer-overflow" in r.stderr, r.stderr[-2000:]


def test_errors_leave_the_emulator_usable():
    with pytest.raises(RuntimeError):
        C.emu_selftest("partial_warp")
    x = torch.randn(3, 40, dtype=torch.float64)
    with ops.emulate_cuda():
        torch.testing.assert_close(ops.segment_mixup(x, backend="kernel"), x + torch.roll(x, 1, 0))


def test_switch_routes_cpu_tensors_to_the_emulated_kernels(monkeypatch):
    x = torch.randn(4, 10, dtype=torch.float64)
    calls = []
    real = ops._common.call

    def spy(name, dev, *args):
        calls.append((name, dev, args[-2:]))
        return real(name, dev, *args)

    monkeypatch.setattr(ops._common, "call", spy)
    ops.segment_mixup(x, backend="kernel")
    with ops.emulate_cuda():
        ops.segment_mixup(x, backend="kernel")
        with ops.emulate_cuda(False):
            ops.segment_mixup(x, backend="kernel")
    monkeypatch.setenv("SAL_EXT_EMULATE_CUDA", "1")
    ops.segment_mixup(x, backend="kernel")
    assert [c[1] for c in calls] == ["cpu", "cuda_emu", "cpu", "cuda_emu"]
    assert calls[1][2] == (0, 0)  # device 0, stream 0
    assert ops.backends()["cuda_emulated"] and not ops.backends()["cuda"]
    with pytest.raises(TypeError, match="`enabled`"):
        with ops.emulate_cuda("yes"):
            pass


def _run_extension(code, **env):
    """Runs `code` in a fresh python with only sal_ext._C loaded (as `_C`; no torch: fast)."""
    load = (f"import importlib.util as u; s = u.spec_from_file_location('_C', {C.__file__!r}); "
            "_C = u.module_from_spec(s); s.loader.exec_module(_C); ")
    return subprocess.run([sys.executable, "-c", load + code], env=dict(os.environ, **env),
                          capture_output=True, text=True)


def test_block_order_follows_the_seed():
    # with one worker the whole launch is reproducible (with several, each block's schedule is,
    # and the interleaving of blocks on different workers is the OS's)
    def order(seed):
        r = _run_extension("print([int(v) for v in _C.emu_selftest('collectives')[-24:]])",
                           SAL_EXT_EMU_SEED=str(seed), SAL_EXT_EMU_WORKERS="1")
        assert r.returncode == 0, r.stderr
        return r.stdout
    assert order(1) == order(1) != order(2)


@pytest.mark.skipif(_sanitizer() == "address", reason="one worker under ASan (plain static shared memory)")
def test_blocks_run_at_the_same_time():
    # each of two blocks waits until both have started: with one block at a time it would wait
    # out its bound and see 1
    assert list(C.emu_selftest("overlap")) == [2.0, 2.0]
    if _sanitizer() != "thread":  # (a race: TSan stops the process, see the next test)
        assert list(C.emu_selftest("block_race")) == [N, N]  # fibers: no lost update in a plain run


@pytest.mark.skipif(_sanitizer() != "thread", reason="needs the TSan build (tools/emu_build.sh tsan)")
@pytest.mark.parametrize("case", ["cross_block_race", "block_race"])
def test_tsan_reports_races_between_and_inside_blocks(case):
    # a non-atomic += on global memory by the first thread of every block (the planted
    # `atomicAdd(acc + b, total)` -> `*(acc + b) += total` of second_order_pool), and on shared
    # memory by every thread of a block: both reported, whatever the schedule
    for seed in ("0", "1"):
        r = _run_extension(f"_C.emu_selftest({case!r})", SAL_EXT_EMU_SEED=seed,
                           TSAN_OPTIONS="halt_on_error=1:exitcode=66")
        assert r.returncode == 66 and "WARNING: ThreadSanitizer: data race" in r.stderr, r.stderr[-3000:]
        assert f"{case}_kernel" in r.stderr, r.stderr[-3000:]


def test_torch_compile_under_emulation(monkeypatch):
    """A compiled front (custom ops) takes the emulated CUDA kernels too, forward and backward."""
    from sal_ext.ops.second_order_pool import second_order_pool_reference
    devs = []
    real = ops._common.call
    monkeypatch.setattr(ops._common, "call", lambda name, dev, *a: (devs.append(dev), real(name, dev, *a))[1])
    x = torch.randn(2, 5, 7, dtype=torch.float64, requires_grad=True)
    with ops.emulate_cuda():
        fn = torch.compile(lambda t: ops.second_order_pool(t, backend="kernel").sum(), backend="eager",
                           fullgraph=True)
        fn(x).backward()
    assert devs and set(devs) == {"cuda_emu"}
    x2 = x.detach().clone().requires_grad_(True)
    second_order_pool_reference(x2).sum().backward()
    torch.testing.assert_close(x.grad, x2.grad, rtol=1e-8, atol=1e-12)
