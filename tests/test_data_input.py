"""Bad corpus input: one line naming the problem and the fix, exit code 2, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from autocompress.cli import main
from autocompress.data import load_demo, load_pair, load_tsv


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["evaluate", *args])
    err = capsys.readouterr().err
    return code, err


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "is empty"),
        (b"hello\thola\n\nbye\tadios\n", "line 2 is empty"),
        (b"hello hola\n", "line 1 has no tab"),
        (b"a\tb\tc\n", "line 1 has 2 tabs"),
        ("hello\thola\n".encode("utf-16"), "UTF-16"),
        (b"\xef\xbb\xbfhello\thola\n", "byte-order mark"),
        (b"hello\thola\r\n", "CRLF"),
        (b"hello\thol\xe1\n", "not UTF-8"),
        (b"hello\t \n", "empty side"),
    ],
)
def test_bad_tsv(tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, expected: str) -> None:
    path = tmp_path / "data.tsv"
    path.write_bytes(content)
    code, err = _run(capsys, "--tsv", str(path))
    assert code == 2
    assert expected in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert path.read_bytes() == content  # nothing overwritten


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run(capsys, "--tsv", str(tmp_path / "nope.tsv"))
    assert code == 2 and "does not exist" in err


def test_line_count_mismatch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "src.txt").write_text("one\ntwo\n")
    (tmp_path / "ref.txt").write_text("uno\n")
    code, err = _run(capsys, "--source", str(tmp_path / "src.txt"), "--reference", str(tmp_path / "ref.txt"))
    assert code == 2 and "has 2 lines but" in err and "has 1" in err


def test_source_without_reference(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "src.txt").write_text("one\n")
    code, err = _run(capsys, "--source", str(tmp_path / "src.txt"))
    assert code == 2 and "--reference" in err


def test_empty_line_in_plain_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "src.txt").write_text("one\n\n")
    (tmp_path / "ref.txt").write_text("uno\ndos\n")
    code, err = _run(capsys, "--source", str(tmp_path / "src.txt"), "--reference", str(tmp_path / "ref.txt"))
    assert code == 2 and "line 2 is empty" in err


def test_console_script_prints_no_traceback(tmp_path: Path) -> None:
    path = tmp_path / "data.tsv"
    path.write_text("no tab here\n")
    proc = subprocess.run(
        [sys.executable, "-m", "autocompress", "evaluate", "--tsv", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr
    assert "source<TAB>reference" in proc.stderr


def test_good_inputs_load(tmp_path: Path) -> None:
    (tmp_path / "d.tsv").write_text("Hello.\tHola.\nBye.\tAdiós.\n")
    (tmp_path / "s.txt").write_text("Hello.\nBye.\n")
    (tmp_path / "r.txt").write_text("Hola.\nAdiós.\n")
    assert load_tsv(tmp_path / "d.tsv").references == ("Hola.", "Adiós.")
    assert load_pair(tmp_path / "s.txt", tmp_path / "r.txt").sources == ("Hello.", "Bye.")
    assert len(load_demo("dev")) >= 400 and len(load_demo("test")) >= 500
