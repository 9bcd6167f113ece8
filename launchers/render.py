"""Render the sbatch templates of ``sbatch/`` for one config, without submitting.

    python -m slurmgen.launchers.render workflow=nr cluster=slurm run.dir=DIR [key=value ...]

writes ``DIR/config.yaml`` (what the jobs read) and ``DIR/sbatch/{registry,llm,peers,
hetjob}.sbatch`` (plus ``llm-<name>.sbatch`` per further LLM pool) + ``submit.sh``;
``bash DIR/sbatch/submit.sh`` submits them by hand.
Placeholders are ``{{name}}``; the text is a pure function of the config
(``render_all``), pinned by golden files in ``tests/golden/sbatch/``.
"""

from __future__ import annotations

import re
import shlex
import shutil
import sys
from importlib import resources
from pathlib import Path

from slurmgen.config import pools
from slurmgen.config.types import SlurmgenConf
from slurmgen.errors import ConfigError
from slurmgen.launchers import fit
from slurmgen.launchers.resources import directives, job_conf, job_name
from slurmgen.run.plan import llm_spec, peer_spec, pool_spec, registry_spec
from slurmgen.toolpool.session import pool_size

TEMPLATES = ("registry.sbatch", "llm.sbatch", "peers.sbatch", "hetjob.sbatch", "submit.sh")
ARRAY_INDEX = "${SLURM_ARRAY_TASK_ID}"
HET_UNIT = "${UNIT}"
_PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")


def template_text(name: str) -> str:
    try:
        return (resources.files("slurmgen.sbatch") / name).read_text()
    except ModuleNotFoundError:  # an editable install made before sbatch/ was packaged
        return (Path(__file__).resolve().parent.parent / "sbatch" / name).read_text()


def fill(template: str, values: dict[str, str], where: str = "template") -> str:
    """Replace every ``{{name}}``; an unknown name is an error (no silent blanks)."""
    def one(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in values:
            raise ConfigError(f"{where}: no value for {{{{{key}}}}}; known: {', '.join(sorted(values))}")
        return values[key]
    return _PLACEHOLDER.sub(one, template)


def shell_join(argv: list[str]) -> str:
    """Quote for bash, leaving ``${VAR}`` references expandable."""
    return " ".join(f'"{a}"' if "${" in a else shlex.quote(a) for a in argv)


def _sbatch_lines(conf: SlurmgenConf, component: str) -> str:
    return "\n".join(f"#SBATCH {d}" for d in directives(conf, component))


def _llm_components(conf: SlurmgenConf) -> dict[str, str]:
    """SLURM component (llm, llm-<name>) -> pool name, for every pool whose servers slurmgen starts."""
    return {pools.component(name): name for name in pools.started(conf)}


def _setup(conf: SlurmgenConf, *components: str) -> str:
    lines = [line for c in components for line in job_conf(conf, c).setup]
    llm = _llm_components(conf)
    for c in components:
        if c in llm:
            env = pools.declared(conf)[llm[c]].server_env
            lines += [f"export {k}={shlex.quote(v)}" for k, v in sorted(env.items())]
    names = " / ".join(f"{pools.key(llm[c])}.slurm.setup" if c in llm else f"cluster.{c}.setup" for c in components)
    return "\n".join(lines) if lines else f"# setup lines go here ({names})"


def _values(conf: SlurmgenConf, run_dir: Path, python: str) -> dict[str, str]:
    if re.search(r"\s", str(run_dir)):
        raise ConfigError(f"run.dir={run_dir!s} contains whitespace; sbatch --output cannot take it")
    return {"run_dir": str(run_dir), "shards": str(conf.run.peers), "pools": str(pool_size(conf))}


def render_component(conf: SlurmgenConf, run_dir: Path, component: str, python: str) -> str:
    """One job array's sbatch text: registry, peer, toolpool or an LLM pool's (llm, llm-<name>)."""
    values = _values(conf, run_dir, python)
    llm = _llm_components(conf)
    if component == "registry":
        spec, last = registry_spec(conf, run_dir, python), 0
    elif component in llm:
        pool = pools.declared(conf)[llm[component]]
        spec, last = llm_spec(conf, run_dir, ARRAY_INDEX, python, pool=llm[component]), pool.replicas - 1
        values.update(replicas=str(pool.replicas), backend=pool.backend, model=pool.model, file=f"{component}.sbatch")
    elif component == "toolpool":
        spec, last = pool_spec(conf, run_dir, ARRAY_INDEX, python), pool_size(conf) - 1
    else:
        spec, last = peer_spec(conf, run_dir, ARRAY_INDEX, python), conf.run.peers - 1
    values.update(job_name=job_name(conf, component), directives=_sbatch_lines(conf, component),
                  setup=_setup(conf, component), command=shell_join(spec.argv), last_index=str(last))
    template = "llm.sbatch" if component in llm else {"peer": "peers.sbatch"}.get(component, f"{component}.sbatch")
    return fill(template_text(template), values, template)


def render_hetjob(conf: SlurmgenConf, run_dir: Path, python: str) -> str:
    """Unit UNIT packs replica UNIT of every started LLM pool (components 0..n-1) and peer UNIT (n)."""
    values = _values(conf, run_dir, python)
    llm = _llm_components(conf)
    components = [*llm, "peer"]
    blocks = [_sbatch_lines(conf, c) for c in components]
    commands = [shell_join(llm_spec(conf, run_dir, HET_UNIT, python, pool=llm[c]).argv) for c in llm]
    commands.append(shell_join(peer_spec(conf, run_dir, HET_UNIT, python).argv))
    sruns = [f"srun --het-group={k} {cmd} &\nchildren+=($!)" for k, cmd in enumerate(commands)]
    values.update(job_name=job_name(conf, "het"), last_index=str(conf.run.peers - 1),
                  components=", ".join(f"{k}: {c}" for k, c in enumerate(components)),
                  het_directives="\n#SBATCH hetjob\n#SBATCH --ntasks=1\n".join(blocks),
                  setup=_setup(conf, *components), het_sruns="\n".join(sruns))
    return fill(template_text("hetjob.sbatch"), values, "hetjob.sbatch")


def _submit_lines(conf: SlurmgenConf) -> str:
    llm = _llm_components(conf)
    if conf.cluster.hetjob and llm:
        return (f"for i in $(seq 0 {conf.run.peers - 1}); do sbatch --export=ALL,UNIT=$i hetjob.sbatch; done"
                "  # cluster.hetjob=true")
    pools_line = "sbatch toolpool.sbatch\n" if pool_size(conf) > 0 else ""
    return "".join(f"sbatch {c}.sbatch\n" for c in llm) + pools_line + "sbatch peers.sbatch"


def components(conf: SlurmgenConf) -> list[str]:
    """The components whose jobs the templates hold."""
    return ["registry", "peer", *_llm_components(conf)] + ["toolpool"] * (pool_size(conf) > 0)


def render_all(conf: SlurmgenConf, run_dir: Path, python: str = sys.executable) -> dict[str, str]:
    """File name -> text, for every template that applies to this config."""
    out = {"registry.sbatch": render_component(conf, run_dir, "registry", python),
           "peers.sbatch": render_component(conf, run_dir, "peer", python)}
    llm = _llm_components(conf)
    for component in llm:
        out[f"{component}.sbatch"] = render_component(conf, run_dir, component, python)
    if llm:
        out["hetjob.sbatch"] = render_hetjob(conf, run_dir, python)
    if "toolpool" in components(conf):
        out["toolpool.sbatch"] = render_component(conf, run_dir, "toolpool", python)
    values = {**_values(conf, run_dir, python), "submit_lines": _submit_lines(conf)}
    out["submit.sh"] = fill(template_text("submit.sh"), values, "submit.sh")
    return out


def write_all(conf: SlurmgenConf, run_dir: Path, python: str = sys.executable) -> list[Path]:
    out_dir = run_dir / "sbatch"
    out_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "slurm").mkdir(exist_ok=True)
    written = []
    for name, text in render_all(conf, run_dir, python).items():
        path = out_dir / name
        path.write_text(text)
        path.chmod(0o755 if name.endswith(".sh") else 0o644)
        written.append(path)
    return written


def compose(overrides: list[str]) -> SlurmgenConf:
    """The config ``python -m slurmgen <overrides>`` would run, with cluster.kind=slurm."""
    import hydra

    from slurmgen.config.load import register_all, typed
    from slurmgen.config.overrides import check_overrides, open_keys

    check_overrides(overrides)
    register_all()
    with hydra.initialize_config_module("slurmgen.configs", version_base="1.3"):
        conf = typed(hydra.compose("config", overrides=open_keys(overrides)))
    conf.cluster.kind = "slurm"
    return conf


def main(argv: list[str] | None = None) -> int:
    from slurmgen.errors import SlurmgenError
    from slurmgen.run import lock
    from slurmgen.run.prepare import prepare

    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] in (["-h"], ["--help"]):
        print(__doc__)
        return 0
    if args[:1] == ["--run-dir"] and len(args) > 1:
        args = [f"run.dir={args[1]}", *args[2:]]
    try:
        conf = compose(args)
        if shutil.which("sinfo"):  # on a cluster: resources checked, auto sized (launchers/fit.py)
            conf = fit.fit_conf(conf, components(conf), fit.read_nodes())
        run, _, _, holder = prepare(conf)
        lock.release(run, holder)  # rendering holds no lock: the driver that submits takes it
        written = write_all(conf, run.root)
    except SlurmgenError as exc:
        print(f"slurmgen: error: {exc}", file=sys.stderr)
        return 2
    for path in written:
        print(path)
    print(f"nothing submitted; to submit by hand: bash {run.root / 'sbatch' / 'submit.sh'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
