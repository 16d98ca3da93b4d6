"""Config reload: jobs added, changed and removed; a bad config keeps the last good one."""

from __future__ import annotations

from status.models import JobState
from tests import _procs as P
from tests.supervisor.harness import HEADER, job, reach, running

S = JobState


async def test_reload_adds_changes_and_removes_jobs(tmp_path):
    keep = job(tmp_path, "keep", P.BEATS_FOREVER, kind="service")
    gone = job(tmp_path, "gone", P.BEATS_FOREVER, kind="service")
    async with running(tmp_path, keep, gone) as d:
        await reach(d, "gone", S.RUNNING)
        doomed = d.jobs["gone"].run
        new = job(tmp_path, "new", P.EXIT_OK)
        changed = keep + 'stall_after = "7m"\n'
        (tmp_path / "config.toml").write_text(HEADER + changed + new)
        reply = d.reload()
        assert reply == {"ok": True, "message": "config reloaded: added new; removed gone; changed keep"}
        await reach(d, "new", S.SUCCEEDED)
        assert d.jobs["keep"].settings.stall_after == 420
        await d.wait_until(lambda: "gone" not in d.jobs, timeout=10)
        assert doomed.state == S.STOPPED and "removed from the config" in doomed.error


async def test_a_bad_config_on_reload_keeps_the_last_good_one(tmp_path):
    async with running(tmp_path, job(tmp_path, "svc", P.BEATS_FOREVER, kind="service")) as d:
        await reach(d, "svc", S.RUNNING)
        (tmp_path / "config.toml").write_text(HEADER + '[jobs.svc]\ncommand = "x"\nstall_after = "20 minutes"\n')
        reply = d.reload()
        assert not reply["ok"]
        assert 'jobs.svc.stall_after: "20 minutes" is not a duration (use e.g. "20m")' in reply["error"]
        assert "last good config" in reply["error"]
        assert d.jobs["svc"].state == S.RUNNING
        assert d.jobs["svc"].settings.command[-1].endswith("svc.py")


async def test_reload_refuses_to_move_the_state_dir(tmp_path):
    async with running(tmp_path, job(tmp_path, "ok", P.EXIT_OK)) as d:
        text = (tmp_path / "config.toml").read_text().replace('state_dir = "var"', 'state_dir = "elsewhere"')
        (tmp_path / "config.toml").write_text(text)
        reply = d.reload()
        assert reply["ok"] is False
        assert reply["error"].startswith("supervisor.state_dir, supervisor.status_file changed: restart")
