"""Queue a Jenkins build of one of the team's pipelines.

Starts a parameterised build on the Jenkins controller (simulated in this demo catalog)
and answers with the queue item and the build URL to follow. The job list is fixed here so
the chat can offer it as a menu; a real catalog could take it from Jenkins itself with
`# opsroom: choices_from = "jenkins jobs"`.
"""

import hashlib
import os
import time
from typing import Literal

JENKINS_URL = "https://jenkins.corp.example/job"


def main(
    job: Literal["deploy-pos", "nightly-inventory", "price-sync", "loyalty-api", "store-image"],
    branch: str = "main",
    wait: bool = False,
) -> None:
    """Queue a build of a Jenkins job.

    Args:
        job: The Jenkins pipeline to build.
        branch: Git branch to build from.
        wait: Wait for the build to finish and show its result (a few seconds).

    Examples:
        !jenkins build deploy-pos
        !jenkins build price-sync --branch release/2026.11 --wait
    """
    if not branch or any(c.isspace() for c in branch) or ".." in branch:
        print(f"error: '{branch}' is not a valid branch name")
        raise SystemExit(2)

    requester = os.environ.get("OPSROOM_REQUESTER", "local:" + os.environ.get("USER", "ops"))
    digest = int(hashlib.sha256(f"{job}:{branch}".encode()).hexdigest()[:6], 16)
    build_number = 1200 + digest % 800
    queue_id = 58000 + digest % 1000

    print(f"Triggering {job} on branch {branch} (requested by {requester})")
    print(f"  POST {JENKINS_URL}/{job}/buildWithParameters?BRANCH={branch}")
    time.sleep(0.3)
    print(f"  queued as item #{queue_id}, waiting for an executor...")
    time.sleep(0.4)
    print(f"  started build #{build_number} on agent linux-build-0{digest % 4 + 1}")
    print(f"Follow it at {JENKINS_URL}/{job}/{build_number}/console")

    if wait:
        for stage in ("Checkout", "Build", "Unit tests", "Publish"):
            time.sleep(0.25)
            print(f"  [{stage}] passed")
        print(f"Build #{build_number} SUCCESS in 1 min 12 s")


if __name__ == "__main__":
    main("deploy-pos", wait=True)
