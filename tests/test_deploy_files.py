"""The deployment files, checked offline: Dockerfile, docker-compose.yml, deploy/.

Nothing is built, pulled or started. docker-compose.yml is validated against the Compose
Specification's JSON schema (deploy/schemas/compose-spec.json, vendored: see its README),
the Kubernetes manifests against Kubernetes' OpenAPI schemas in strict mode (the
kubernetes-validate package ships them; missing, these tests fail, they do not skip), and
both for what matters to this project: every Rasa replica started through bot.rasa_runtime,
the gateway's RASA_URLS naming exactly the replicas, no secret written in a file, the
migrations before the services, the variables of the endpoints file all set.
"""

from __future__ import annotations

import ast
import functools
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
ENDPOINTS = ROOT / "deploy" / "endpoints.production.yml"
K8S = ROOT / "deploy" / "k8s"
SECRET_TEMPLATE = "secret.template.yaml"
PLACEHOLDER = "CHANGE-ME"
# What compose needs in .env (or the shell) to start; sample values for the checks.
SAMPLE_ENV = {"POSTGRES_PASSWORD": "pg-pass-1234", "REDIS_PASSWORD": "redis-pass-5678",
              "RASA_TOKEN": "rasa-token-9012"}
# Observed resident memory (README "Performance"): requests must cover it.
RESIDENT = {"rasa": 1.1 * 2**30, "gateway": 150 * 2**20, "actions": 400 * 2**20}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|AUTH|_KEY$", re.IGNORECASE)
# The optional secrets .env may hold, with sample values (compose passes a variable listed
# without a value from .env to the container when .env sets it).
OPTIONAL_SECRETS = {"HEALTH_TOKEN": "health-token-3456", "STATUS_HTTP_TOKEN": "status-7890",
                    "ZALO_OA_SECRET_KEY": "zalo-oa-key-1", "ZALO_APP_SECRET": "zalo-app-2",
                    "ZALO_ACCESS_TOKEN": "zalo-access-3", "ZALO_REFRESH_TOKEN": "zalo-refresh-4"}
ZALO_SECRETS = {k for k in OPTIONAL_SECRETS if k.startswith("ZALO_")}
# Which container may see which secret (issue 18, item 8); "rasa": every Rasa replica.
COMPOSE_SECRETS = {
    "postgres": {"POSTGRES_PASSWORD"},
    "redis": {"REDIS_PASSWORD"},
    "migrate": {"POSTGRES_PASSWORD"},
    "train": {"POSTGRES_PASSWORD"},
    "trainer": {"POSTGRES_PASSWORD"},
    "actions": {"POSTGRES_PASSWORD", "STATUS_HTTP_TOKEN"},
    "rasa": {"POSTGRES_PASSWORD", "REDIS_PASSWORD", "RASA_TOKEN"},
    # REDIS_PASSWORD: its /healthz pings the lock store
    "gateway": {"POSTGRES_PASSWORD", "REDIS_PASSWORD", "RASA_TOKEN", "HEALTH_TOKEN",
                *ZALO_SECRETS},
}
K8S_SECRETS = {  # keys of the Secret dvc-secrets per container
    "migrate": {"DATABASE_PASSWORD"},
    "trainer": {"DATABASE_PASSWORD"},
    "actions": {"DATABASE_PASSWORD", "STATUS_HTTP_TOKEN"},
    "rasa": {"DATABASE_PASSWORD", "REDIS_PASSWORD", "RASA_TOKEN"},
    "gateway": {"DATABASE_PASSWORD", "REDIS_PASSWORD", "RASA_TOKEN", "HEALTH_TOKEN",
                "ZALO_APP_ID", *ZALO_SECRETS},
}
# Rasa's API routes that need its token (rasa/server.py: @requires_auth); "/" does not.
RASA_API_PATHS = re.compile(r"^/(status|model|conversations|domain)\b")
ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")  # Rasa's ${VAR} in endpoint files
K8S_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")  # Kubernetes' $(VAR)


# --------------------------------------------------------------------------- helpers


class MissingVariable(Exception):
    """A `${VAR:?message}` whose variable is unset (compose refuses to start)."""


_COMPOSE_VAR = re.compile(
    r"\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))")


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's interpolation of every string: $$, $VAR, ${VAR}, ${VAR:-d}, ${VAR-d},
    ${VAR:?err}, ${VAR?err}."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def sub(m: re.Match[str]) -> str:
        if m[1]:
            return "$"
        name, op, arg = m[2] or m[5], m[3], m[4] or ""
        current = env.get(name)
        unset = current is None or (op is not None and op.startswith(":") and current == "")
        if op in ("-", ":-"):
            return arg if unset else current
        if op in ("?", ":?") and unset:
            raise MissingVariable(f"{name}: {arg}")
        return current or ""

    return _COMPOSE_VAR.sub(sub, value)


def load_compose() -> dict[str, Any]:
    """docker-compose.yml as compose sees it before interpolation (YAML merges applied)."""
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def compose_env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def strings(value: Any) -> list[str]:
    """Every string anywhere in a parsed YAML document."""
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return [value] if isinstance(value, str) else []


def plain_rasa(cmd: list[str]) -> bool:
    """`rasa run …` or `python -m rasa …`: Rasa without bot.rasa_runtime's patches."""
    if cmd and Path(cmd[0]).name == "rasa":
        return True
    return any(a == "-m" and b == "rasa" for a, b in zip(cmd, cmd[1:], strict=False))


def check_rasa_command(cmd: list[str]) -> dict[str, str]:
    """A Rasa replica's command line; returns its --options' values."""
    assert cmd[:4] == ["python", "-m", "bot.rasa_runtime", "run"], cmd
    assert "--enable-api" in cmd, cmd
    opts = {a: b for a, b in zip(cmd, cmd[1:], strict=False) if a.startswith("--")}
    for opt in ("--model", "--port", "--endpoints", "--credentials", "--interface"):
        assert opt in opts, f"{opt} missing in {cmd}"
    assert opts["--interface"] == "0.0.0.0", cmd
    assert opts["--credentials"] == "/app/credentials.yml"
    assert (ROOT / "credentials.yml").is_file()
    assert opts["--model"].startswith("/app/models/"), cmd
    return opts


def image_tag(image: str) -> str | None:
    """The tag or digest of an image reference (None: neither, i.e. :latest)."""
    if "@sha256:" in image:
        return image.split("@", 1)[1]
    last = image.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else None


_UNITS = {"": 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
          "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def quantity(value: Any) -> float:
    m = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(value))
    assert m and m[2] in _UNITS, f"not a Kubernetes quantity: {value!r}"
    return float(m[1]) * _UNITS[m[2]]


def endpoints_vars() -> set[str]:
    """The ${VAR}s of the production endpoints file's values (not of its comments)."""
    doc = yaml.safe_load(ENDPOINTS.read_text(encoding="utf-8"))
    return {name for text in strings(doc) for name in ENV_REF.findall(text)}


def manifest_files() -> list[Path]:
    return sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


@functools.cache
def k8s_docs() -> tuple[tuple[str, dict[str, Any]], ...]:
    """Every document of deploy/k8s/*.yaml (but the kustomization), parsed once: read only."""
    docs = []
    for path in manifest_files():
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc:
                docs.append((path.name, doc))
    return tuple(docs)


def k8s_kind(kind: str) -> list[dict[str, Any]]:
    return [d for _, d in k8s_docs() if d["kind"] == kind]


def k8s_one(kind: str, name: str) -> dict[str, Any]:
    found = [d for d in k8s_kind(kind) if d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def workloads() -> list[dict[str, Any]]:
    return [d for _, d in k8s_docs() if d["kind"] in ("Deployment", "StatefulSet", "Job")]


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def k8s_validator() -> Any:  # noqa: ANN401 - the kubernetes_validate.utils module
    try:
        from kubernetes_validate import utils
    except ImportError:
        pytest.fail("kubernetes-validate is not installed: it ships the Kubernetes schemas "
                    "these tests validate against (dev dependency group; `uv sync`)")
    return utils


# --------------------------------------------------------------------------- compose


def test_compose_file_matches_the_compose_specification() -> None:
    schema = json.loads((ROOT / "deploy" / "schemas" / "compose-spec.json").read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    raw = load_compose()
    for label, doc in (("as written", raw), ("interpolated", interpolate(raw, SAMPLE_ENV))):
        errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
                  for e in validator.iter_errors(doc)]
        assert not errors, f"docker-compose.yml ({label}):\n" + "\n".join(errors)


def test_compose_refuses_to_start_without_its_secrets() -> None:
    raw = load_compose()
    interpolate(raw, SAMPLE_ENV)  # complete: no error
    for name in SAMPLE_ENV:
        env = {k: v for k, v in SAMPLE_ENV.items() if k != name}
        with pytest.raises(MissingVariable, match=name):
            interpolate(raw, env)
        with pytest.raises(MissingVariable, match=name):
            interpolate(raw, {**env, name: ""})


def test_compose_services_and_images() -> None:
    services = interpolate(load_compose(), SAMPLE_ENV)["services"]
    assert {"postgres", "redis", "migrate", "actions", "rasa-1", "rasa-2",
            "gateway"} <= set(services)
    assert services["postgres"]["image"] == "postgres:15"
    assert services["redis"]["image"] == "redis:7"
    for name, svc in services.items():
        tag = image_tag(svc["image"])
        assert tag and tag != "latest", f"{name}: image {svc['image']} is not pinned"
    app_images = {svc["image"] for name, svc in services.items()
                  if name not in ("postgres", "redis")}
    assert len(app_images) == 1, f"one image for every role, got {app_images}"
    assert services["actions"]["deploy"]["replicas"] >= 2
    assert any(str(p).endswith(":8080") for p in services["gateway"]["ports"])
    assert [n for n, s in services.items() if s.get("ports")] == ["gateway"]


def test_compose_rasa_replicas_start_through_rasa_runtime() -> None:
    services = load_compose()["services"]
    rasa = sorted(n for n in services if re.fullmatch(r"rasa(-\d+)?", n))
    assert len(rasa) >= 2, rasa
    for name, svc in services.items():
        cmd = [str(c) for c in svc.get("command") or []]
        assert not plain_rasa(cmd), f"{name} starts Rasa without bot.rasa_runtime: {cmd}"
        if "bot.rasa_runtime" in cmd:
            assert name in rasa, f"{name} runs Rasa but is not named rasa-N"
    for name in rasa:
        opts = check_rasa_command([str(c) for c in services[name]["command"]])
        assert opts["--endpoints"] == "/app/deploy/endpoints.production.yml"
        assert opts["--model"] == "/app/models/${RASA_MODEL:-}"


def test_compose_gateway_routes_to_exactly_the_rasa_services() -> None:
    services = interpolate(load_compose(), SAMPLE_ENV)["services"]
    rasa = {n: s for n, s in services.items() if re.fullmatch(r"rasa(-\d+)?", n)}
    env = compose_env(services["gateway"])
    urls = [urlsplit(u) for u in env["RASA_URLS"].split(",")]
    listed = [(u.hostname, u.port) for u in urls]
    expected = [(n, int(check_rasa_command([str(c) for c in s["command"]])["--port"]))
                for n, s in sorted(rasa.items())]
    assert sorted(listed) == expected, f"RASA_URLS {listed} != the rasa services {expected}"
    assert len(set(listed)) == len(listed)
    assert env.get("RASA_URL", env["RASA_URLS"].split(",")[0]) in env["RASA_URLS"].split(",")
    for key in ("ACTIONS_URLS", "ACTIONS_URL"):
        for url in env[key].split(","):
            assert urlsplit(url).hostname in services, f"{key}: no service for {url}"
    for name in rasa:
        action = urlsplit(compose_env(services[name])["ACTION_ENDPOINT_URL"])
        assert action.hostname in services and action.path == "/webhook"


def test_compose_has_no_literal_secret() -> None:
    raw = load_compose()
    required = re.compile(r"\$\{[A-Z_]+:\?[^}]+\}")
    for name, svc in raw["services"].items():
        for key, value in (svc.get("environment") or {}).items():
            if SECRET_NAME.search(key) and value is not None:  # None: from .env when set
                assert required.fullmatch(str(value)), (
                    f"{name}: {key} must come from a required variable, ${{X:?...}}")
    for name, svc in raw["services"].items():
        cmd = [str(c) for c in svc.get("command") or []]
        for option, value in zip(cmd, cmd[1:], strict=False):
            if re.fullmatch(r"--?\w*pass\w*", option):
                assert required.fullmatch(value), f"{name}: a literal {option}"
    for text in strings(raw):
        for m in re.finditer(r"://([^/@\s]*)@", text):
            user, _, password = m[1].partition(":")
            assert not password or required.fullmatch(password), (
                f"a password written into {text!r}")
    # and none of the sample secrets leaks into the configuration's text
    text = COMPOSE.read_text(encoding="utf-8")
    assert all(value not in text for value in SAMPLE_ENV.values())


def role(name: str) -> str:
    return "rasa" if re.fullmatch(r"rasa(-\d+)?", name) else name


def test_compose_gives_each_container_only_its_own_secrets() -> None:
    """No container gets .env whole (env_file): a secret reaches only the services that use
    it, however it gets there (a variable, a URL, a command, a health check)."""
    raw = load_compose()
    for name, svc in raw["services"].items():
        assert "env_file" not in svc, f"{name}: env_file hands it every secret of .env"
    env = {**SAMPLE_ENV, **OPTIONAL_SECRETS}
    services = interpolate(raw, env)["services"]
    assert {role(n) for n in services} == set(COMPOSE_SECRETS)
    for name, svc in services.items():
        resolved = dict(svc)
        # a variable listed without a value comes from .env (or the shell) when set there
        resolved["environment"] = {k: env.get(k, "") if v is None else v
                                   for k, v in (svc.get("environment") or {}).items()}
        text = "\n".join(strings(resolved))
        sees = {secret for secret, value in env.items() if value in text}
        assert sees == COMPOSE_SECRETS[role(name)], f"{name} sees {sorted(sees)}"


def test_compose_rasa_api_needs_the_token() -> None:
    """Every Rasa replica gets RASA_TOKEN (required: compose refuses to start without it)
    in its environment, never on its command line, and bot.rasa_runtime hands it to Rasa's
    --auth-token; the gateway, Rasa's API client, holds the same token."""
    from bot.rasa_runtime import with_auth_token

    raw = load_compose()
    services = interpolate(raw, SAMPLE_ENV)["services"]
    token = SAMPLE_ENV["RASA_TOKEN"]
    rasa = [n for n in services if role(n) == "rasa"]
    for name in [*rasa, "gateway"]:
        assert re.fullmatch(r"\$\{RASA_TOKEN:\?[^}]+\}",
                            raw["services"][name]["environment"]["RASA_TOKEN"]), name
        assert compose_env(services[name])["RASA_TOKEN"] == token
    for name in rasa:
        cmd = [str(c) for c in services[name]["command"]]
        assert not any(a.startswith(("--auth-token", "-t")) or token in a for a in cmd), cmd
        argv = with_auth_token(cmd[2:], compose_env(services[name]))
        assert argv[-1] == f"--auth-token={token}"
        probe = " ".join(services[name]["healthcheck"]["test"])
        if "5005/status" in probe:  # Rasa's API: with the token from the environment
            assert "os.environ['RASA_TOKEN']" in probe and token not in probe


def test_compose_start_order_postgres_migrate_services() -> None:
    services = load_compose()["services"]
    for name in ("postgres", "redis"):
        assert services[name].get("healthcheck", {}).get("test"), f"{name}: no healthcheck"
    migrate = services["migrate"]
    assert migrate["command"] == ["python", "-m", "bot", "db", "upgrade", "--catalog"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    apps = [n for n in services if n not in ("postgres", "redis", "migrate")]
    for name in apps:
        deps = services[name].get("depends_on") or {}
        assert deps.get("migrate", {}).get("condition") == "service_completed_successfully", (
            f"{name} must wait for the migrations")
    for name in [n for n in apps if n.startswith("rasa")] + ["gateway"]:
        assert services[name]["depends_on"]["redis"]["condition"] == "service_healthy"

    order: list[str] = []

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"depends_on cycle: {' -> '.join((*path, name))}"
        if name in order:
            return
        for dep in services[name].get("depends_on") or {}:
            assert dep in services, f"{name} depends on unknown {dep}"
            visit(dep, (*path, name))
        order.append(name)

    for name in services:
        visit(name, ())
    assert order.index("postgres") < order.index("migrate") < min(map(order.index, apps))


def test_compose_rasa_environment_sets_every_variable_of_the_endpoints_file() -> None:
    from sqlalchemy.engine.url import make_url

    needed = endpoints_vars()
    services = interpolate(load_compose(), SAMPLE_ENV)["services"]
    for name in [n for n in services if re.fullmatch(r"rasa(-\d+)?", n)]:
        env = compose_env(services[name])
        assert needed <= set(env), f"{name} lacks {sorted(needed - set(env))}"
        db = make_url(env["DATABASE_URL"])
        assert (db.host, str(db.port), db.database, db.username, db.password) == (
            env["DATABASE_HOST"], env["DATABASE_PORT"], env["DATABASE_NAME"],
            env["DATABASE_USER"], env["DATABASE_PASSWORD"]), "tracker store != DATABASE_URL"
        redis = urlsplit(env["REDIS_URL"])
        assert (redis.hostname, str(redis.port), redis.path.strip("/"), redis.password) == (
            env["REDIS_HOST"], env["REDIS_PORT"], env["REDIS_DB"], env["REDIS_PASSWORD"])
        assert env["DATABASE_PASSWORD"] == SAMPLE_ENV["POSTGRES_PASSWORD"]


# --------------------------------------------------------------------------- endpoints


def test_rasa_reads_the_production_endpoints_file(monkeypatch: pytest.MonkeyPatch) -> None:
    from rasa.shared.exceptions import RasaException
    from rasa.utils.endpoints import read_endpoint_config

    env = {"ACTION_ENDPOINT_URL": "http://actions:5055/webhook", "DATABASE_HOST": "db.internal",
           "DATABASE_PORT": "5432", "DATABASE_NAME": "dvc", "DATABASE_USER": "dvc",
           "DATABASE_PASSWORD": "pw", "REDIS_HOST": "redis.internal", "REDIS_PORT": "6380",
           "REDIS_DB": "0", "REDIS_PASSWORD": ""}
    assert set(env) == endpoints_vars()
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    path = str(ENDPOINTS)
    action = read_endpoint_config(path, "action_endpoint")
    assert action.url == "http://actions:5055/webhook"
    tracker = read_endpoint_config(path, "tracker_store")
    assert tracker.type == "SQL" and tracker.url == "db.internal"
    assert tracker.kwargs["dialect"] == "postgresql"
    assert (tracker.kwargs["db"], tracker.kwargs["username"], tracker.kwargs["password"]) == (
        "dvc", "dvc", "pw")
    locks = read_endpoint_config(path, "lock_store")
    assert locks.url == "redis.internal" and int(locks.kwargs["port"]) == 6380
    assert locks.kwargs["password"] == ""  # set but empty: a Redis without a password
    if locks.type != "redis":  # a lock store class of ours, by module path
        module, _, cls = locks.type.rpartition(".")
        source = ROOT / (module.replace(".", "/") + ".py")
        assert source.is_file(), f"lock store module {module} not found"
        classes = {n.name for n in ast.parse(source.read_text()).body
                   if isinstance(n, ast.ClassDef)}
        assert cls in classes, f"{locks.type} not defined"
    monkeypatch.delenv("DATABASE_PASSWORD")
    with pytest.raises(RasaException, match="DATABASE_PASSWORD"):
        read_endpoint_config(path, "tracker_store")


# --------------------------------------------------------------------------- Dockerfile


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    out, buf = [], ""
    for raw in (ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        instruction, _, args = (buf + line).partition(" ")
        out.append((instruction.upper(), args.strip()))
        buf = ""
    return out


def test_dockerfile() -> None:
    steps = dockerfile()
    args = dict(a.split("=", 1) for i, a in steps if i == "ARG" and "=" in a)
    bases = [re.sub(r"\$\{(\w+)\}", lambda m: args[m[1]], a.split()[0])
             for i, a in steps if i == "FROM"]
    assert bases and all(b.startswith("python:3.10-slim") for b in bases), bases
    runs = " ".join(a for i, a in steps if i == "RUN")
    make_uv = re.search(r"uv==([0-9.]+)", (ROOT / "Makefile").read_text()).group(1)
    assert f"pip install uv=={make_uv}" in runs, "the Makefile's uv release, from PyPI"
    assert "uv sync --frozen --no-dev" in runs
    users = [a for i, a in steps if i == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "runs as root"
    assert "HEALTHCHECK" not in {i for i, _ in steps}
    for i, a in steps:
        if i in ("ENV", "ARG"):
            for key in re.findall(r"(\w+)=", a):
                assert not SECRET_NAME.search(key), f"{i} {key}: no secret in the image"
    assert steps[-1][0] == "CMD"
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", "var", ".env", "models/*"} <= ignored


# --------------------------------------------------------------------------- Kubernetes


# jsonschema warns that the schemas' $schema is unknown to it (they predate its drafts' URIs)
@pytest.mark.filterwarnings("ignore:The metaschema specified by:DeprecationWarning")
def test_k8s_manifests_match_the_kubernetes_schemas() -> None:
    utils = k8s_validator()
    version = utils.latest_version()
    errors = []
    for name, doc in k8s_docs():
        try:
            utils.validate(doc, version, strict=True)
        except utils.ValidationError as e:
            path = "/".join(map(str, e.path))
            errors.append(f"{name} {doc['kind']}/{doc['metadata']['name']} {path}: {e.message}")
        except utils.SchemaNotFoundError as e:
            errors.append(f"{name}: {e.message}")
    assert not errors, f"against Kubernetes {version}:\n" + "\n".join(errors)


def test_kustomization_lists_every_manifest_but_the_secret_template() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = kustomization["resources"]
    assert all((K8S / r).is_file() for r in listed), listed
    expected = {p.name for p in manifest_files()} - {SECRET_TEMPLATE}
    assert sorted(listed) == sorted(expected)
    assert kustomization["namespace"] == k8s_kind("Namespace")[0]["metadata"]["name"]
    for image in kustomization.get("images", []):
        assert image.get("newTag") not in (None, "", "latest") or image.get("digest")
    namespaces = {d["metadata"].get("namespace") for _, d in k8s_docs()} - {None}
    assert namespaces == {kustomization["namespace"]}


def test_k8s_rasa_statefulset_and_the_gateways_rasa_urls() -> None:
    sts = k8s_one("StatefulSet", "rasa")
    labels = sts["spec"]["template"]["metadata"]["labels"]
    service = k8s_one("Service", sts["spec"]["serviceName"])
    assert service["spec"].get("clusterIP") == "None", "the StatefulSet's Service is headless"
    assert selects(service["spec"]["selector"], labels)
    (container,) = sts["spec"]["template"]["spec"]["containers"]
    opts = check_rasa_command(container["command"] + container["args"])
    assert opts["--model"] == "/app/models/$(RASA_MODEL)"
    port = int(opts["--port"])
    replicas = sts["spec"]["replicas"]
    assert replicas >= 2
    names = [f"{sts['metadata']['name']}-{i}.{service['metadata']['name']}"
             for i in range(replicas)]
    config = k8s_one("ConfigMap", "dvc-env")["data"]
    assert config["RASA_URLS"].split(",") == [f"http://{n}:{port}" for n in names]
    assert config["RASA_URL"] in config["RASA_URLS"].split(",")
    # the endpoints file: the ConfigMap's copy, mounted where --endpoints points
    endpoints = k8s_one("ConfigMap", "dvc-rasa-endpoints")["data"]["endpoints.yml"]
    assert endpoints == ENDPOINTS.read_text(encoding="utf-8"), (
        "deploy/k8s/configmap.yaml's endpoints.yml differs from deploy/endpoints.production.yml")
    volumes = {v["name"]: v for v in sts["spec"]["template"]["spec"]["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    mount_dir, _, key = opts["--endpoints"].rpartition("/")
    assert volumes[mounts[mount_dir]]["configMap"]["name"] == "dvc-rasa-endpoints"
    assert key == "endpoints.yml"
    pdbs = [p for p in k8s_kind("PodDisruptionBudget")
            if selects(p["spec"]["selector"]["matchLabels"], labels)]
    assert len(pdbs) == 1 and 1 <= pdbs[0]["spec"]["minAvailable"] < replicas


def test_k8s_containers_pinned_sized_probed() -> None:
    for workload in workloads():
        kind, name = workload["kind"], workload["metadata"]["name"]
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        for c in pod.get("initContainers", []) + pod["containers"]:
            where = f"{kind}/{name} container {c['name']}"
            tag = image_tag(c["image"])
            assert tag and tag != "latest", f"{where}: image {c['image']} is not pinned"
            assert not plain_rasa(c.get("command", []) + c.get("args", [])), where
            res = c.get("resources", {})
            for kind_ in ("cpu", "memory"):
                request, limit = res["requests"][kind_], res["limits"][kind_]
                assert quantity(limit) >= quantity(request), f"{where}: {kind_} limit < request"
            if kind != "Job":
                assert c.get("readinessProbe") and c.get("livenessProbe"), f"{where}: probes"
            assert c["securityContext"]["allowPrivilegeEscalation"] is False, where
    for component, resident in RESIDENT.items():
        (workload,) = [w for w in workloads()
                       if w["metadata"]["labels"]["app.kubernetes.io/component"] == component]
        memory = workload["spec"]["template"]["spec"]["containers"][0]["resources"]
        assert quantity(memory["requests"]["memory"]) >= resident, component
    gateway = k8s_one("Deployment", "gateway")["spec"]["template"]["spec"]["containers"][0]
    assert gateway["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert k8s_one("Deployment", "gateway")["spec"]["replicas"] >= 2
    assert k8s_one("Deployment", "actions")["spec"]["replicas"] >= 2
    (job,) = k8s_kind("Job")
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == [
        "python", "-m", "bot", "db", "upgrade", "--catalog"]


def test_k8s_secret_template_holds_placeholders_only() -> None:
    secrets = [(f, d) for f, d in k8s_docs() if d["kind"] == "Secret"]
    assert [f for f, _ in secrets] == [SECRET_TEMPLATE], "only the template may be a Secret"
    secret = secrets[0][1]
    assert "data" not in secret, "base64 `data` could hide a real value: stringData only"
    values = secret["stringData"]
    assert values["DATABASE_PASSWORD"] == PLACEHOLDER and values["REDIS_PASSWORD"] == PLACEHOLDER
    assert all(v in (PLACEHOLDER, "") for v in values.values()), values
    for config in k8s_kind("ConfigMap"):
        for key in config["data"]:
            assert not SECRET_NAME.search(key), f"ConfigMap {key}: secrets go in dvc-secrets"
    for _, doc in k8s_docs():
        for text in strings(doc):
            for m in re.finditer(r"://([^/@\s]*)@", text):
                password = m[1].partition(":")[2]
                assert not password or re.fullmatch(r"\$\([A-Z_]+\)", password), text


def test_k8s_every_variable_a_container_uses_is_defined() -> None:
    configmaps = {c["metadata"]["name"]: c["data"] for c in k8s_kind("ConfigMap")}
    secret = k8s_kind("Secret")[0]
    secrets = {secret["metadata"]["name"]: secret["stringData"]}
    needed = endpoints_vars()
    for workload in workloads():
        for c in workload["spec"]["template"]["spec"]["containers"]:
            where = f"{workload['metadata']['name']}/{c['name']}"
            defined: set[str] = set()
            for source in c.get("envFrom", []):
                if "configMapRef" in source:
                    defined |= set(configmaps[source["configMapRef"]["name"]])
                else:
                    defined |= set(secrets[source["secretRef"]["name"]])
            for var in c.get("env", []):
                refs = K8S_REF.findall(var.get("value", ""))
                assert set(refs) <= defined, f"{where}: {var['name']} uses undefined {refs}"
                ref = var.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["key"] in secrets[ref["name"]], f"{where}: {ref}"
                defined.add(var["name"])
            for arg in c.get("command", []) + c.get("args", []):
                assert set(K8S_REF.findall(arg)) <= defined, f"{where}: {arg}"
            if "bot.rasa_runtime" in c.get("command", []):
                assert needed <= defined, f"{where} lacks {needed - defined}"
            if workload["kind"] != "Job":
                assert {"DATABASE_URL", "DATABASE_PASSWORD"} <= defined, where


def secret_keys(container: dict[str, Any], secret: dict[str, Any]) -> set[str]:
    """The keys of the Secret a container reads (envFrom: all of them)."""
    keys = set()
    for source in container.get("envFrom", []):
        if "secretRef" in source:
            keys |= set(secret["stringData"])
    for var in container.get("env", []):
        ref = var.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            keys.add(ref["key"])
    return keys


def test_k8s_gives_each_container_only_its_own_secrets() -> None:
    secret = k8s_kind("Secret")[0]
    seen = {}
    for workload in workloads():
        for c in workload["spec"]["template"]["spec"]["containers"]:
            assert not any("secretRef" in s for s in c.get("envFrom", [])), (
                f"{c['name']}: envFrom hands it the whole Secret")
            seen[c["name"]] = secret_keys(c, secret)
    assert seen == K8S_SECRETS
    assert set().union(*K8S_SECRETS.values()) == set(secret["stringData"])  # all used
    assert secret["stringData"]["RASA_TOKEN"] == PLACEHOLDER  # required, like the passwords


def test_k8s_rasa_api_needs_the_token() -> None:
    from bot.rasa_runtime import with_auth_token

    sts = k8s_one("StatefulSet", "rasa")
    (container,) = sts["spec"]["template"]["spec"]["containers"]
    cmd = container["command"] + container["args"]
    assert not any(a.startswith(("--auth-token", "-t")) or "RASA_TOKEN" in a for a in cmd)
    env = {v["name"]: v for v in container["env"]}
    assert env["RASA_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "dvc-secrets", "key": "RASA_TOKEN"}  # not optional
    assert with_auth_token(cmd[2:], {"RASA_TOKEN": "t0ken"})[-1] == "--auth-token=t0ken"
    gateway = k8s_one("Deployment", "gateway")["spec"]["template"]["spec"]["containers"][0]
    assert "RASA_TOKEN" in secret_keys(gateway, k8s_kind("Secret")[0])
    for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
        probe = container.get(kind) or {}
        path = probe.get("httpGet", {}).get("path", "")
        assert not RASA_API_PATHS.match(path), f"{kind} {path}: 401 without the token"
        command = " ".join(probe.get("exec", {}).get("command", []))
        if "/status" in command:
            assert "os.environ['RASA_TOKEN']" in command, kind


def test_k8s_services_select_pods_and_ports() -> None:
    pods = [(w["spec"]["template"]["metadata"]["labels"],
             {p["name"] for c in w["spec"]["template"]["spec"]["containers"]
              for p in c.get("ports", [])})
            for w in workloads()]
    for service in k8s_kind("Service"):
        spec, name = service["spec"], service["metadata"]["name"]
        if spec.get("type") == "ExternalName":
            assert spec["externalName"], name
            continue
        ports = [p for labels, p in pods if selects(spec["selector"], labels)]
        assert ports, f"Service {name} selects no pod"
        for port in spec["ports"]:
            assert all(port["targetPort"] in p for p in ports), f"{name}: {port}"
    for policy in k8s_kind("NetworkPolicy"):
        selector = policy["spec"]["podSelector"]["matchLabels"]
        assert any(selects(selector, labels) for labels, _ in pods), policy["metadata"]


# --------------------------------------------------------------------------- training


TRAINING_MEMORY = 3 * 2**30  # what `rasa train` needs (README "Model registry")


def test_compose_trains_in_the_trainer_service_not_the_gateway() -> None:
    """Issue 18 item 7: the console's trainings ran in the gateway's container (1G)."""
    from bot.config import Settings

    services = interpolate(load_compose(), SAMPLE_ENV)["services"]
    gateway, trainer = services["gateway"], services["trainer"]
    assert compose_env(gateway)["TRAINING_MODE"] == "queue"
    assert Settings.from_env(compose_env(gateway)).training_mode == "queue"
    assert trainer["command"] == ["python", "-m", "bot", "model", "trainer"]
    assert "profiles" not in trainer, "`docker compose up` must start the trainer"
    assert trainer["restart"] == "unless-stopped"
    assert trainer["healthcheck"]["test"][-1] == "--alive"
    memory = {n: quantity(s["deploy"]["resources"]["limits"]["memory"].replace("G", "Gi")
                          .replace("M", "Mi")) for n, s in services.items()
              if n in ("gateway", "trainer")}
    assert memory["trainer"] >= TRAINING_MEMORY > memory["gateway"], memory
    assert "models:/app/models" in trainer["volumes"]  # read-write: it writes the models
    assert trainer["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_k8s_trains_in_the_trainer_deployment_not_the_gateway() -> None:
    from bot.config import Settings

    config = k8s_one("ConfigMap", "dvc-env")["data"]
    assert Settings.from_env({"TRAINING_MODE": config["TRAINING_MODE"]}).training_mode == "queue"
    trainer = k8s_one("Deployment", "trainer")
    assert trainer["spec"]["replicas"] == 1 and trainer["spec"]["strategy"]["type"] == "Recreate"
    pod = trainer["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] == ["python", "-m", "bot", "model", "trainer"]
    assert container["livenessProbe"]["exec"]["command"][-1] == "--alive"
    assert [e["configMapRef"]["name"] for e in container["envFrom"]] == ["dvc-env"]
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert not mounts["/app/models"].get("readOnly")
    (volume,) = pod["volumes"]
    assert volume["persistentVolumeClaim"]["claimName"] == "dvc-models"
    gateway = k8s_one("Deployment", "gateway")["spec"]["template"]["spec"]["containers"][0]
    assert quantity(container["resources"]["requests"]["memory"]) >= TRAINING_MEMORY
    assert quantity(gateway["resources"]["limits"]["memory"]) < TRAINING_MEMORY
