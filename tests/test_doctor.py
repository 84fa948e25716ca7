"""``affectlens doctor``: the CPU report and the self-check against the fp32 model."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from affectlens.cpu import cpu_info
from affectlens.doctor import MIN_AGREEMENT, format_doctor, run_doctor
from conftest import FER2013, need


def _doctor(*args, env=None, cwd=None):
    proc = subprocess.run([sys.executable, "-m", "affectlens", "doctor", *args, "--json", "-"],
                          capture_output=True, text=True, timeout=300, env=env, cwd=cwd)
    assert proc.returncode in (0, 1), proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def test_int8_self_check_on_fer_faces_measures_accuracy_and_agreement():
    rc, r = _doctor("--model", "fer-vgg48s-int8", "--data", str(need(FER2013)), "--faces", "300")
    assert r["cpu"]["int8_path"] == cpu_info().int8_path and r["threads"]["spin_wait"] is False
    assert r["model"] == "fer-vgg48s-int8" and r["reference"] == "fer-vgg48s" and r["faces"] == 300
    assert 0.6 < r["accuracy"] < 0.85 and abs(r["accuracy"] - r["reference_accuracy"]) <= 0.02
    assert r["agreement"] >= 0.97, f"int8 disagrees with fp32 on {cpu_info().describe()}"
    assert r["ok"] == (r["agreement"] >= MIN_AGREEMENT) and rc == (0 if r["ok"] else 1)


def test_without_data_it_checks_agreement_on_the_sample_photos(tmp_path):
    env = {**os.environ, "AFFECTLENS_SHARED_DATA": str(tmp_path / "none")}
    rc, r = _doctor("--model", "fer-vgg48s-int8", env=env, cwd=tmp_path)
    if r["faces"] == 0:
        pytest.skip("no sample photos installed")
    assert "sample photos" in r["faces_source"] and r["accuracy"] is None
    assert r["agreement"] is not None and r["agreement"] >= 0.9


def test_fp32_needs_no_reference_and_the_text_names_cpu_and_model():
    report = run_doctor("fer-vgg48s", "fp32", data=need(FER2013), faces=50)
    assert report.ok and report.agreement is None and report.reference == "fer-vgg48s"
    text = format_doctor(report)
    assert cpu_info().int8_path in text and "fer-vgg48s" in text and "result     OK" in text
