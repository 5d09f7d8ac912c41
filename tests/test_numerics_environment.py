"""The numerics summary train_net.py logs: CPU, SIMD level and threads, read as they are now."""

import platform

import torch

from maskx_d2.numerics_environment import cpu_model_name, numerics_environment


def test_reports_the_threads_torch_uses_now():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert numerics_environment()["torch intra-op threads"] == "1"
    finally:
        torch.set_num_threads(before)
    summary = numerics_environment()
    assert summary["torch cpu capability"] == torch.backends.cpu.get_cpu_capability()
    assert summary["cuda device"] == "none" or torch.cuda.is_available()


def test_cpu_model_is_read_from_cpuinfo_with_a_fallback(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: X\nmodel name\t: Test CPU 9000\nflags\t: a\n")
    assert cpu_model_name(str(cpuinfo)) == "Test CPU 9000"
    missing = str(tmp_path / "absent")
    assert cpu_model_name(missing) == (platform.processor() or "unknown")
