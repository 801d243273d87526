"""A run's Ray processes find their own cluster's State API while another program's local Ray
instance runs on the machine: Ray Train's placement-group cleaner depends on it."""
from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO, Workspace, explain

pytestmark = pytest.mark.integration

# what the cleaner does: ask the State API, with no address, whether an actor of the job is alive
SCRIPT = """
import ray
from ray.util.state import get_actor
from pipelines.run import init_ray

init_ray()

@ray.remote
class Holder:
    def actor_id(self):
        return ray.get_runtime_context().get_actor_id()

@ray.remote(num_cpus=0)
def state_of(actor_id):
    return get_actor(actor_id).state

holder = Holder.remote()
print("STATE", ray.get(state_of.remote(ray.get(holder.actor_id.remote()))))
"""


def test_state_api_finds_the_runs_own_cluster_beside_another_instance(local_ray, tmp_path):
    proc = subprocess.run([sys.executable, "-c", SCRIPT], cwd=REPO, env=Workspace(tmp_path).env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, explain(proc)
    assert "STATE ALIVE" in proc.stdout, explain(proc)
