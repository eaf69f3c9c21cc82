"""`make run`'s supervisor keeps its banner (URL and login) in sight: printed
again when the web server starts again, and after a while of output."""

from __future__ import annotations

import importlib.util
import sys
import threading

from tests.support import ROOT

_spec = importlib.util.spec_from_file_location("run_script", ROOT / "scripts" / "run.py")
run_script = importlib.util.module_from_spec(_spec)
sys.modules["run_script"] = run_script  # its dataclasses look their module up
_spec.loader.exec_module(run_script)

STARTED = "Starting development server at http://127.0.0.1:8000/"
BANNER = ["FlexDash is running: open http://127.0.0.1:8000/", "Log in as: demo / x"]


def supervised_web() -> tuple[run_script.Supervisor, run_script.Child]:
    sup = run_script.Supervisor()
    web = run_script.Child("web", [])
    sup.children.append(web)
    return sup, web


def stop_soon(sup, seconds: float = 0.3) -> None:
    threading.Timer(seconds, sup.stop_requested.set).start()


def test_only_a_second_start_of_the_web_server_counts_as_a_restart():
    _, web = supervised_web()
    web.notice(STARTED)
    assert not web.restarted.is_set()
    web.notice('[now] "GET / HTTP/1.1" 200 5')
    web.notice(STARTED)
    assert web.restarted.is_set()


def test_the_banner_is_printed_again_when_the_web_server_restarts(capsys):
    sup, web = supervised_web()
    web.notice(STARTED)
    web.notice(STARTED)
    stop_soon(sup)
    assert run_script.keep_banner_in_sight(sup, web, BANNER) == "stop"
    assert capsys.readouterr().out.count(BANNER[1]) == 1


def test_the_banner_comes_back_after_a_while_of_output_only(capsys, monkeypatch):
    monkeypatch.setattr(run_script, "BANNER_REPEAT", 0.05)
    sup, web = supervised_web()
    stop_soon(sup)
    run_script.keep_banner_in_sight(sup, web, BANNER)
    assert BANNER[1] not in capsys.readouterr().out  # nothing printed: nothing scrolled

    sup, web = supervised_web()
    threading.Timer(0.1, web.notice, ["a request line after the banner"]).start()
    stop_soon(sup)
    run_script.keep_banner_in_sight(sup, web, BANNER)
    assert capsys.readouterr().out.count(BANNER[1]) == 1
