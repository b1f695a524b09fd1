"""The container image's recipe, checked without a Docker engine.

The Dockerfile is parsed and its promises asserted (multi-stage on Debian slim, dependencies
in their own cached layer, non-root, unbuffered, entrypoint). Then the builder stage is
replayed in a local venv: its COPY steps from the repository (through .dockerignore) and its
RUN steps verbatim, and the installed ``stream-monitor`` must accept the example config.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import venv
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import ROOT

DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
BASE_IMAGE = "python:3.11-slim-bookworm"
VENV_IN_IMAGE = "/opt/venv"


@dataclass
class Stage:
    base: str
    name: str | None
    steps: list[tuple[str, str]] = field(default_factory=list)  # (INSTRUCTION, arguments)

    def args(self, instruction: str) -> list[str]:
        return [rest for name, rest in self.steps if name == instruction]


def logical_lines(text: str) -> list[str]:
    """Instructions with continuation lines joined and comments dropped."""
    lines, current = [], ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not current):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1].rstrip() + " "
            continue
        current += stripped
        if current:
            lines.append(current)
        current = ""
    return lines


def parse_dockerfile(path: Path = DOCKERFILE) -> list[Stage]:
    stages: list[Stage] = []
    build_args: dict[str, str] = {}
    for line in logical_lines(path.read_text(encoding="utf-8")):
        instruction, _, rest = line.partition(" ")
        instruction, rest = instruction.upper(), rest.strip()
        if instruction == "ARG" and not stages:
            name, _, default = rest.partition("=")
            build_args[name] = default.strip('"')
        elif instruction == "FROM":
            parts = rest.split()
            base = re.sub(r"\$\{?(\w+)\}?", lambda m: build_args.get(m.group(1), ""), parts[0])
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(base, name))
        else:
            assert stages, f"{instruction} before FROM"
            stages[-1].steps.append((instruction, rest))
    return stages


def env_of(stage: Stage) -> dict[str, str]:
    """ENV of a stage (``ENV A=1 B="x y"`` form)."""
    env: dict[str, str] = {}
    for rest in stage.args("ENV"):
        for item in shlex.split(rest):
            key, _, value = item.partition("=")
            env[key] = value
    return env


def copy_sources(stage: Stage) -> list[tuple[list[str], str]]:
    """(sources, destination) of the stage's COPY steps from the build context."""
    copies = []
    for rest in stage.args("COPY"):
        words = [w for w in shlex.split(rest) if not w.startswith("--")]
        if "--from=" in rest:
            continue
        copies.append((words[:-1], words[-1]))
    return copies


def glob_to_regex(glob: str) -> str:
    """A .dockerignore pattern as a regex: ``**`` spans folders, ``*`` and ``?`` do not."""
    regex, i = "", 0
    while i < len(glob):
        if glob.startswith("**/", i):
            regex, i = regex + "(?:.*/)?", i + 3
        elif glob.startswith("**", i):
            regex, i = regex + ".*", i + 2
        elif glob[i] == "*":
            regex, i = regex + "[^/]*", i + 1
        elif glob[i] == "?":
            regex, i = regex + "[^/]", i + 1
        elif glob[i] == "[":
            end = glob.index("]", i)
            regex, i = regex + glob[i : end + 1], end + 1
        else:
            regex, i = regex + re.escape(glob[i]), i + 1
    return regex


def dockerignore_excludes(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents wins."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for pattern in patterns:
        regex = glob_to_regex(pattern.lstrip("!").strip("/"))
        if any(re.fullmatch(regex, candidate) for candidate in candidates):
            excluded = not pattern.startswith("!")
    return excluded


def dockerignore_patterns() -> list[str]:
    lines = DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


# ---------------------------------------------------------------------------- the recipe


def test_multi_stage_build_on_debian_slim() -> None:
    stages = parse_dockerfile()
    assert len(stages) >= 2, "expected a builder stage and a final stage"
    for stage in stages:
        assert stage.base == BASE_IMAGE, stage.base
        assert "alpine" not in stage.base
    assert stages[0].name == "builder"
    final = stages[-1]
    assert [f"--from={stages[0].name} {VENV_IN_IMAGE} {VENV_IN_IMAGE}"] == [
        rest for rest in final.args("COPY") if rest.startswith("--from=")
    ]
    assert not [run for run in final.args("RUN") if "pip install" in run], (
        "installs belong in the builder stage"
    )


def test_final_stage_runs_unbuffered_as_non_root() -> None:
    final = parse_dockerfile()[-1]
    env = env_of(final)
    assert env.get("PYTHONUNBUFFERED") == "1"
    assert env["PATH"].startswith(f"{VENV_IN_IMAGE}/bin:")
    (user,) = final.args("USER")
    uid = user.split(":")[0]
    assert uid == "10001", f"USER {user}: run as uid 10001"
    assert any("--uid 10001" in run for run in final.args("RUN")), "no user with uid 10001"
    assert final.steps.index(("USER", user)) > max(
        i for i, (name, _) in enumerate(final.steps) if name in {"RUN", "COPY"}
    ), "USER must come after every RUN and COPY"


def test_entrypoint_cmd_and_port() -> None:
    final = parse_dockerfile()[-1]
    (entrypoint,) = final.args("ENTRYPOINT")
    (cmd,) = final.args("CMD")
    assert json.loads(entrypoint) == ["stream-monitor"]
    assert json.loads(cmd) == ["run", "--config", "/etc/stream-monitor/monitor.yaml"]
    assert final.args("EXPOSE") == ["9108"]


def test_dependencies_have_their_own_cached_layer() -> None:
    builder = parse_dockerfile()[0]
    steps = builder.steps

    def index(predicate: str, instruction: str) -> int:
        found = [
            i
            for i, (name, rest) in enumerate(steps)
            if name == instruction and re.search(predicate, rest)
        ]
        assert found, f"no {instruction} matching {predicate!r}"
        return found[0]

    copy_project = index(r"^pyproject\.toml\s", "COPY")
    install_deps = index(r"pip install -r ", "RUN")
    copy_source = index(r"^stream_monitor\s", "COPY")
    install_package = index(r"^pip install \.$", "RUN")
    assert copy_project < install_deps < copy_source < install_package
    # Only pyproject.toml is in the build when the dependency layer is made, so a source edit
    # never reinstalls the dependencies.
    before = [rest for name, rest in steps[:install_deps] if name in {"COPY", "ADD"}]
    assert before == [steps[copy_project][1]]
    assert shlex.split(steps[copy_project][1])[0] == "pyproject.toml"


def test_dockerignore_keeps_what_the_build_copies_and_nothing_else() -> None:
    patterns = dockerignore_patterns()
    for stage in parse_dockerfile():
        for sources, _ in copy_sources(stage):
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: missing from the repository"
                assert not dockerignore_excludes(source, patterns), f".dockerignore drops {source}"
                for path in (ROOT / source).rglob("*.py"):
                    relative = path.relative_to(ROOT).as_posix()
                    assert not dockerignore_excludes(relative, patterns), relative
    for kept_out in (
        ".git/HEAD",
        ".venv/bin/python",
        "tests/conftest.py",
        "helm/x/Chart.yaml",
        "stream_monitor/__pycache__/cli.cpython-311.pyc",
    ):
        assert dockerignore_excludes(kept_out, patterns), f".dockerignore lets {kept_out} in"


# ---------------------------------------------------------------------------- replay


def test_builder_steps_install_a_working_stream_monitor(tmp_path: Path) -> None:
    """Replay the builder's COPY and RUN steps into a venv, then run check-config."""
    builder = parse_dockerfile()[0]
    context = tmp_path / "src"
    context.mkdir()
    target_venv = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(target_venv)
    image_env = {k: v for k, v in env_of(builder).items() if k not in {"PATH", "VIRTUAL_ENV"}}
    env = {
        **os.environ,
        **image_env,
        "VIRTUAL_ENV": str(target_venv),
        "PATH": f"{target_venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    env.pop("PYTHONPATH", None)
    patterns = dockerignore_patterns()
    ran = []
    for instruction, rest in builder.steps:
        if instruction == "COPY":
            words = [w for w in shlex.split(rest) if not w.startswith("--")]
            *sources, destination = words
            for source in sources:
                origin = ROOT / source
                assert origin.exists(), f"COPY {source}: not in the repository yet"
                dest = context / destination
                if origin.is_dir():
                    shutil.copytree(
                        origin,
                        dest if not destination.endswith("/") else dest / origin.name,
                        ignore=lambda d, names: [
                            n
                            for n in names
                            if dockerignore_excludes(
                                (Path(d) / n).relative_to(ROOT).as_posix(), patterns
                            )
                        ],
                    )
                else:
                    target = dest / origin.name if destination.endswith("/") else dest
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(origin, target)
        elif instruction == "RUN":
            if re.search(r"\s-m venv\s", f" {rest} "):
                continue  # the venv is ours, at tmp_path/venv
            done = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", rest],
                cwd=context,
                env=env,
                capture_output=True,
                text=True,
                timeout=900,
            )
            assert done.returncode == 0, f"RUN {rest}\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
            ran.append(rest)
    assert "pip install ." in ran, "the package install step did not run"

    executable = target_venv / "bin" / "stream-monitor"
    assert executable.exists(), "the package installs no stream-monitor command"
    where = subprocess.run(
        [
            str(target_venv / "bin" / "python"),
            "-c",
            "import stream_monitor; print(stream_monitor.__file__)",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert Path(where.stdout.strip()).is_relative_to(target_venv), where.stdout
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    done = subprocess.run(
        [str(executable), "check-config", "config/monitor.yaml"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
