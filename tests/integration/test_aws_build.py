"""The Lambda build: every handler the template names imports from the artifact alone.

The artifact is built for this machine (the template's arm64 build cannot run here); the
check imports each handler in an isolated interpreter whose only path is the artifact, so
a missing dependency, a stripped compiled module or a wrong handler name fails here.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest
import yaml

from tests.support.deploy import deploy_module

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def _builder() -> ModuleType:
    return deploy_module("build")


def test_the_build_targets_what_the_template_names() -> None:
    build = _builder()
    runtime, arch, handlers = build.template_target()
    glob = yaml.safe_load((DEPLOY / "stacks" / "delivery.yaml").read_text("utf-8"))["Globals"]["Function"]
    assert (runtime, [arch]) == (glob["Runtime"], glob["Architectures"]) == ("python3.13", ["arm64"])
    assert build.PLATFORM[arch] == "manylinux2014_aarch64"
    assert handlers == [
        "lunamail.entrypoints.aws.feedback.ses_feedback_handler",
        "lunamail.entrypoints.aws.http.http_handler",
        "lunamail.entrypoints.aws.sqs_handler",
        "lunamail.entrypoints.aws.uploads.upload_handler",
    ]


def test_every_handler_imports_from_the_built_artifact(tmp_path: Path) -> None:
    build = _builder()
    out = build.build(tmp_path / "artifact", local=True)
    so = [p.name for p in out.rglob("*.so")]
    assert any(name.startswith("orjson") for name in so)  # compiled modules are kept
    times = build.check(out)
    assert sorted(times) == build.template_target()[2]
    # The check really isolates: a handler whose dependency is missing fails it.
    for dist in out.glob("orjson*"):
        build.shutil.rmtree(dist) if dist.is_dir() else dist.unlink()
    with pytest.raises(SystemExit, match="does not import"):
        build.check(out)
