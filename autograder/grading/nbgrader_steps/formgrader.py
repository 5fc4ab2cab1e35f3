"""The formgrader's "Autograde" button, routed through the course's driver (sandbox, trusted decision, report).

nbgrader's own button runs `nbgrader autograde` in the server's process: no sandbox, no trusted decision, no
report row. This Jupyter server extension (enabled by `make formgrader`) answers the same URL first, runs
`python -m autograder.grading <assignment> --students <student>` and returns its summary as the button's log.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.utils import url_path_join
from tornado import web

from autograder.grading.limits import FORMGRADER_SECONDS
from autograder.grading.settings import REPOSITORY

AUTOGRADE = r"/formgrader/api/submission/([^/]+)/([^/]+)/autograde"


class AutogradeThroughDriver(JupyterHandler):
    """POST: grade one submission the way `make autograde` does; the formgrader shows the log it returns.

    A JupyterHandler like nbgrader's own (not an APIHandler): the formgrader's page parses the reply's text itself,
    and a reply sent as application/json reaches it already parsed, so it would show no result at all.
    """

    @web.authenticated
    async def post(self, assignment_id: str, student_id: str) -> None:
        command = [sys.executable, "-m", "autograder.grading", assignment_id, "--students", student_id]
        done = await self._run(command)
        result = {"success": done.returncode == 0, "log": done.stdout}
        if done.returncode != 0:
            result["error"] = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else "grading failed"
        self.finish(json.dumps(result))

    async def _run(self, command: list[str]) -> subprocess.CompletedProcess:
        """Run the driver off the server's event loop (a submission takes tens of seconds)."""
        from tornado.ioloop import IOLoop

        env = {**os.environ, "PYTHONPATH": str(REPOSITORY)}
        return await IOLoop.current().run_in_executor(None, lambda: subprocess.run(
            command, cwd=REPOSITORY, env=env, capture_output=True, text=True,
            timeout=FORMGRADER_SECONDS))


def _jupyter_server_extension_points() -> list[dict]:
    return [{"module": "autograder.grading.nbgrader_steps.formgrader"}]


def _load_jupyter_server_extension(serverapp: object) -> None:
    """Put our handler ahead of nbgrader's for the autograde URL, whichever extension loaded first."""
    app = serverapp.web_app
    app.add_handlers(".*$", [(url_path_join(app.settings["base_url"], AUTOGRADE), AutogradeThroughDriver)])
    app.default_router.rules.insert(0, app.default_router.rules.pop(-2))  # add_handlers put it before the last
