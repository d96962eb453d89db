"""deploy/kubernetes, checked without Kubernetes (there is none here, nor Helm, nor the chart).

- workers.yaml: every object deserializes strictly into the kubernetes client's models. The gpu
  workers have a GPU node selector, a toleration and a GPU limit. The commands parse with the
  CLI's own parser.
- values.yaml: what Dagster's chart renders from it, modelled below on its templates: the
  instance (dagster.yaml) validates against Dagster's schemas, class by class, and its run
  queue, storage and compute logs equal deploy/production/dagster.yaml's. A real
  K8sRunLauncher builds a run's Job from it.
- Every pod gets the settings that the project's code (resources, executor) and the instance
  read."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import kubernetes
import pytest
import yaml
from dagster._config import process_config
from dagster._core.code_pointer import ModuleCodePointer
from dagster._core.instance.config import dagster_instance_config
from dagster._core.origin import JobPythonOrigin, RepositoryPythonOrigin
from dagster._serdes.config_class import ConfigurableClassData, class_from_code_pointer
from dagster_k8s import K8sRunLauncher
from dagster_k8s.job import construct_dagster_k8s_job
from dagster_k8s.models import k8s_model_from_dict, k8s_snake_case_dict

from platform_assets import cli
from platform_assets.defs import executors, resources
from platform_assets.settings import SETTINGS
from platform_assets_tests.support.helpers import ROOT

VALUES = ROOT / "deploy" / "kubernetes" / "values.yaml"
WORKERS = ROOT / "deploy" / "kubernetes" / "workers.yaml"
PRODUCTION = ROOT / "deploy" / "production" / "dagster.yaml"

# The release and namespace deploy/kubernetes/README.md installs with; the chart names its
# objects after the release (the instance's ConfigMap: `dagster-instance`).
RELEASE = NAMESPACE = "dagster"
SUBCHART = f"{RELEASE}-dagster-user-deployments"  # the user-deployments subchart's full name
CHART_DAGSTER_HOME = "/opt/dagster/dagster_home"
CHART_PG_SECRET = f"{RELEASE}-postgresql-secret"
PG_PASSWORD_KEY = "postgresql-password"  # the key every chart pod and run Job reads DAGSTER_PG_PASSWORD from
# boto3 reads the S3 credentials from the environment (deploy/README.md); nothing in the
# project's code names them.
S3_CREDENTIALS = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
GPU = "nvidia.com/gpu"
KINDS = {("v1", "ConfigMap"): kubernetes.client.V1ConfigMap, ("apps/v1", "Deployment"): kubernetes.client.V1Deployment}


# --- strict Kubernetes objects ------------------------------------------------------------------


def _typed(openapi_type: str, value: Any, where: str) -> None:
    """Each scalar of the type the API declares for it: the API server refuses a number where
    it wants a string (a ConfigMap's value, an argument), and the client's models let it pass.
    Resource quantities are the exception: the API server reads `cpu: 2` as a quantity."""
    if value is None:
        return
    if openapi_type.startswith("list["):
        assert isinstance(value, list), f"{where}: a list, not {value!r}"
        for i, item in enumerate(value):
            _typed(openapi_type[5:-1], item, f"{where}[{i}]")
    elif openapi_type.startswith(("dict[", "dict(")):  # dict[str, str] (or dict(str, str) in older clients)
        assert isinstance(value, dict), f"{where}: a map, not {value!r}"
        inner = openapi_type[5:-1].split(",", 1)[1].strip()
        quantities = where.endswith((".limits", ".requests"))
        for key, item in value.items():
            if not (quantities and isinstance(item, int | float) and not isinstance(item, bool)):
                _typed(inner, item, f"{where}[{key}]")
    elif openapi_type in ("str", "int", "bool", "float"):
        expected = {"str": str, "int": int, "bool": bool, "float": int | float}[openapi_type]
        ok = isinstance(value, expected) and (openapi_type == "bool" or not isinstance(value, bool))
        assert ok, f"{where}: a {openapi_type}, not {value!r}"
    elif openapi_type in ("datetime", "date"):
        assert isinstance(value, str), f"{where}: a time, not {value!r}"
    elif openapi_type != "object":
        model = getattr(kubernetes.client.models, openapi_type)
        for attr, item in value.items():
            _typed(model.openapi_types[attr], item, f"{where}.{attr}")


def strict_model(model: type, manifest: dict, where: str) -> Any:
    """`manifest` (camelCase, as kubectl reads it) as a kubernetes client model: an unknown field
    anywhere fails (dagster_k8s's strict parsing), so does a scalar of the wrong type, and the
    model's own validation runs (a required field missing)."""
    snake = k8s_snake_case_dict(model, manifest)
    for attr, value in snake.items():
        _typed(model.openapi_types[attr], value, f"{where}.{attr}")
    return k8s_model_from_dict(model, snake)


def load_workers() -> dict[str, Any]:
    """workers.yaml's objects by name, each parsed strictly."""
    objects = {}
    for doc in yaml.safe_load_all(WORKERS.read_text()):
        if doc is None:
            continue
        kind = (doc.get("apiVersion"), doc.get("kind"))
        assert kind in KINDS, f"workers.yaml: {kind} is none of {sorted(KINDS)}"
        obj = strict_model(KINDS[kind], doc, f"{doc['kind']} {doc['metadata']['name']}")
        assert obj.metadata.name not in objects, f"workers.yaml: two objects named {obj.metadata.name}"
        objects[obj.metadata.name] = obj
    return objects


def deployments(objects: dict[str, Any]) -> dict[str, kubernetes.client.V1Deployment]:
    return {n: o for n, o in objects.items() if isinstance(o, kubernetes.client.V1Deployment)}


def config_maps(objects: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {n: o.data or {} for n, o in objects.items() if isinstance(o, kubernetes.client.V1ConfigMap)}


def worker_queues(container: kubernetes.client.V1Container, monkeypatch: pytest.MonkeyPatch):
    """The container's command parsed by `platform-assets`'s own argument parser (cli.main, with
    the worker itself replaced by a stub that returns what it was given)."""
    assert container.command[0] == "platform-assets"
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["platform-assets"] == "platform_assets.cli:main"
    parsed = []
    with monkeypatch.context() as patch:
        patch.setattr(cli, "cmd_worker", parsed.append)
        cli.main([*container.command[1:], *(container.args or [])])
    (args,) = parsed
    assert args.command == "worker" and args.concurrency >= 1
    queues = args.queues.split(",")
    assert set(queues) <= set(executors.QUEUES), f"{queues}: the executor's queues are {executors.QUEUES}"
    return args, queues


def worker_container(deployment: kubernetes.client.V1Deployment) -> kubernetes.client.V1Container:
    (container,) = deployment.spec.template.spec.containers
    return container


def workers_by_queue(objects, monkeypatch) -> dict[str, kubernetes.client.V1Deployment]:
    by_queue = {}
    for deployment in deployments(objects).values():
        _, queues = worker_queues(worker_container(deployment), monkeypatch)
        by_queue[",".join(queues)] = deployment
    return by_queue


# --- what the chart renders from values.yaml (a model of its templates) -------------------------


def load_values() -> dict:
    return yaml.safe_load(VALUES.read_text())


def _renamed(section: dict, keys: dict[str, str], where: str) -> dict:
    """`section`'s camelCase keys as the instance's snake_case ones, as the chart's template
    writes them; a key the chart's schema does not have fails (its schema forbids them)."""
    unknown = sorted(set(section) - set(keys))
    assert not unknown, f"values.yaml {where}: {unknown} are not keys of the chart's {where}"
    return {keys[key]: value for key, value in section.items()}


def _names(refs: list[dict]) -> list[str]:
    return [ref["name"] for ref in refs or [] if "name" in ref]


LAUNCHER_KEYS = {
    "imagePullPolicy": "image_pull_policy",
    "jobNamespace": "job_namespace",
    "loadInclusterConfig": "load_incluster_config",
    "kubeconfigFile": "kubeconfig_file",
    "envConfigMaps": "env_config_maps",
    "envSecrets": "env_secrets",
    "envVars": "env_vars",
    "volumeMounts": "volume_mounts",
    "volumes": "volumes",
    "labels": "labels",
    "failPodOnRunFailure": "fail_pod_on_run_failure",
    "resources": "resources",
    "schedulerName": "scheduler_name",
    "securityContext": "security_context",
    "runK8sConfig": "run_k8s_config",
    "image": "job_image",
}
RUN_K8S_CONFIG_KEYS = {
    "containerConfig": "container_config",
    "podSpecConfig": "pod_spec_config",
    "podTemplateSpecMetadata": "pod_template_spec_metadata",
    "jobSpecConfig": "job_spec_config",
    "jobMetadata": "job_metadata",
}
QUEUED_KEYS = {
    "maxConcurrentRuns": "max_concurrent_runs",
    "tagConcurrencyLimits": "tag_concurrency_limits",
    "dequeueIntervalSeconds": "dequeue_interval_seconds",
    "dequeueUseThreads": "dequeue_use_threads",
    "dequeueNumWorkers": "dequeue_num_workers",
    "blockOpConcurrencyLimitedRuns": "block_op_concurrency_limited_runs",
}
S3_LOGS_KEYS = {
    "bucket": "bucket",
    "localDir": "local_dir",
    "prefix": "prefix",
    "useSsl": "use_ssl",
    "verify": "verify",
    "verifyCertPath": "verify_cert_path",
    "endpointUrl": "endpoint_url",
    "skipEmptyFiles": "skip_empty_files",
    "uploadInterval": "upload_interval",
    "uploadExtraArgs": "upload_extra_args",
    "showUrlOnly": "show_url_only",
    "region": "region",
}
POSTGRESQL_KEYS = {"enabled", "image", "postgresqlHost", "postgresqlUsername", "postgresqlDatabase"}
POSTGRESQL_KEYS |= {"postgresqlParams", "postgresqlScheme", "service"}  # never postgresqlPassword: a Secret


def pg_secret(values: dict) -> str:
    return values.get("global", {}).get("postgresqlSecretName") or CHART_PG_SECRET


def dagster_home(values: dict) -> str:
    return values.get("global", {}).get("dagsterHome") or CHART_DAGSTER_HOME


def image(spec: dict) -> str:
    return f"{spec['repository']}:{spec['tag']}"


def code_location(values: dict) -> dict:
    (location,) = values["dagster-user-deployments"]["deployments"]
    return location


def render_run_launcher(values: dict) -> dict:
    """The chart's `run_launcher` for `type: K8sRunLauncher`."""
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    config = _renamed(values["runLauncher"]["config"]["k8sRunLauncher"], LAUNCHER_KEYS, "k8sRunLauncher")
    for key in ("env_config_maps", "env_secrets"):
        if key in config:
            config[key] = _names(config[key])
    if "job_image" in config:
        config["job_image"] = image(config["job_image"])
    if "run_k8s_config" in config:
        config["run_k8s_config"] = _renamed(config["run_k8s_config"], RUN_K8S_CONFIG_KEYS, "runK8sConfig")
    config.setdefault("job_namespace", NAMESPACE)
    config |= {
        "service_account_name": RELEASE,
        "dagster_home": dagster_home(values),
        "instance_config_map": f"{RELEASE}-instance",
        "postgres_password_secret": pg_secret(values),
    }
    return {"module": "dagster_k8s", "class": "K8sRunLauncher", "config": config}


def render_run_coordinator(values: dict) -> dict:
    coordinator = values["dagsterDaemon"]["runCoordinator"]
    assert coordinator["enabled"] and coordinator["type"] == "QueuedRunCoordinator"
    config = _renamed(coordinator["config"]["queuedRunCoordinator"], QUEUED_KEYS, "queuedRunCoordinator")
    if "block_op_concurrency_limited_runs" in config:
        block = config["block_op_concurrency_limited_runs"]
        config["block_op_concurrency_limited_runs"] = {
            "enabled": block["enabled"],
            "op_concurrency_slot_buffer": block["opConcurrencySlotBuffer"],
        }
    return {"module": "dagster.core.run_coordinator", "class": "QueuedRunCoordinator", "config": config}


def render_compute_logs(values: dict) -> dict:
    assert values["computeLogManager"]["type"] == "S3ComputeLogManager"
    s3 = values["computeLogManager"]["config"]["s3ComputeLogManager"]
    config = _renamed(s3, S3_LOGS_KEYS, "s3ComputeLogManager") | {"verify": s3.get("verify") is not False}
    return {"module": "dagster_aws.s3.compute_log_manager", "class": "S3ComputeLogManager", "config": config}


def render_postgres_db(values: dict) -> dict:
    pg = values["postgresql"]
    unknown = sorted(set(pg) - POSTGRESQL_KEYS)
    assert not unknown, f"values.yaml postgresql: {unknown} (a password belongs in the Secret {pg_secret(values)})"
    assert pg["enabled"] is False, "the instance database is an existing server, not the chart's"
    db = {
        "username": pg["postgresqlUsername"],
        "password": {"env": "DAGSTER_PG_PASSWORD"},
        "hostname": pg["postgresqlHost"],
        "db_name": pg["postgresqlDatabase"],
        "port": pg["service"]["port"],
        "params": pg.get("postgresqlParams", {}),
    }
    if pg.get("postgresqlScheme"):
        db["scheme"] = pg["postgresqlScheme"]
    return {"postgres_db": db}


def render_instance(values: dict) -> dict:
    """The parts of the chart's instance ConfigMap (dagster.yaml) this project sets."""
    storage = {"config": render_postgres_db(values)}
    daemon = values["dagsterDaemon"]
    sensors = _renamed(daemon["sensors"], {"useThreads": "use_threads", "numWorkers": "num_workers"}, "sensors")
    return {
        "run_storage": {"module": "dagster_postgres.run_storage", "class": "PostgresRunStorage"} | storage,
        "event_log_storage": {"module": "dagster_postgres.event_log", "class": "PostgresEventLogStorage"} | storage,
        "schedule_storage": {"module": "dagster_postgres.schedule_storage", "class": "PostgresScheduleStorage"}
        | storage,
        "run_launcher": render_run_launcher(values),
        "run_coordinator": render_run_coordinator(values),
        "compute_logs": render_compute_logs(values),
        "sensors": sensors,
        "telemetry": {"enabled": values["telemetry"]["enabled"]},
    }


def render_location_container_context(values: dict) -> dict:
    """What the chart hands the code location's gRPC server as its container context, which
    every run of it then carries (`includeConfigInLaunchedRuns`)."""
    location = code_location(values)
    assert location.get("includeConfigInLaunchedRuns", {"enabled": True})["enabled"]
    k8s = {
        "image_pull_policy": location["image"]["pullPolicy"],
        "env_config_maps": [f"{SUBCHART}-{location['name']}-user-env", *_names(location.get("envConfigMaps"))],
        "namespace": NAMESPACE,
        "service_account_name": f"{SUBCHART}-user-deployments",
        "run_k8s_config": {"pod_spec_config": {"automount_service_account_token": True}},
    }
    if location.get("envSecrets"):
        k8s["env_secrets"] = _names(location["envSecrets"])
    for key, name in (("volumeMounts", "volume_mounts"), ("volumes", "volumes"), ("labels", "labels")):
        if location.get(key):
            k8s[name] = location[key]
    if location.get("resources"):
        k8s["resources"] = location["resources"]
    if isinstance(location.get("env"), list):
        k8s["env"] = location["env"]
    return {"k8s": k8s}


def configured(klass_data: dict, where: str) -> dict:
    """`klass_data`'s config processed by its class's own schema (defaults filled in). The class
    is found as the instance finds it (ConfigurableClassData maps `dagster.core` to `dagster._core`)."""
    data = ConfigurableClassData(klass_data["module"], klass_data["class"], yaml.safe_dump(klass_data["config"]))
    klass = class_from_code_pointer(data.module_name, data.class_name)
    result = process_config(klass.config_type(), klass_data["config"])
    assert result.success, f"{where}: " + "; ".join(e.message for e in result.errors)
    return result.value


def env_references(config: Any) -> Iterator[str]:
    """The environment variables an instance's config reads (`{env: NAME}`)."""
    if isinstance(config, dict):
        if set(config) == {"env"} and isinstance(config["env"], str):
            yield config["env"]
        for value in config.values():
            yield from env_references(value)
    elif isinstance(config, list):
        for value in config:
            yield from env_references(value)


@pytest.fixture
def instance_env(monkeypatch: pytest.MonkeyPatch) -> dict:
    """The rendered instance, with every variable it reads set (config sources resolve them)."""
    instance = render_instance(load_values())
    for name in env_references(instance):
        monkeypatch.setenv(name, f"{name.lower()}-value")
    return instance


# --- workers.yaml -------------------------------------------------------------------------------


def test_workers_yaml_is_strict_kubernetes_objects() -> None:
    objects = load_workers()
    assert "platform-assets-env" in config_maps(objects)
    assert deployments(objects), "workers.yaml has no Deployment"
    for name, deployment in deployments(objects).items():
        spec = deployment.spec
        assert spec.selector.match_labels.items() <= spec.template.metadata.labels.items(), name
        pod = spec.template.spec
        volumes = {v.name: v for v in pod.volumes}
        for volume in volumes.values():  # workers share no disk: nothing but their own and ConfigMaps
            assert volume.empty_dir is not None or volume.config_map is not None, f"{name}: volume {volume.name}"
        for mount in worker_container(deployment).volume_mounts:
            assert mount.name in volumes, f"{name}: mount {mount.name} has no volume"


def test_the_gpu_workers_ask_for_a_gpu_node_and_serve_only_the_gpu_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    by_queue = workers_by_queue(load_workers(), monkeypatch)
    assert set(by_queue) == {executors.CPU_QUEUE, executors.GPU_QUEUE}, f"worker queues: {sorted(by_queue)}"
    assert executors.GPU_STEP == {executors.QUEUE_TAG: executors.GPU_QUEUE}  # the torch steps' queue

    gpu = by_queue[executors.GPU_QUEUE].spec.template.spec
    assert gpu.node_selector == {"nvidia.com/gpu.present": "true"}
    assert any(t.key == GPU and t.operator == "Exists" and t.effect == "NoSchedule" for t in gpu.tolerations or [])
    resources_ = worker_container(by_queue[executors.GPU_QUEUE]).resources
    assert str(resources_.limits.get(GPU)) == "1", resources_.limits
    assert {"cpu", "memory"} <= set(resources_.requests), resources_.requests

    cpu = by_queue[executors.CPU_QUEUE].spec.template.spec
    assert GPU not in (worker_container(by_queue[executors.CPU_QUEUE]).resources.limits or {})
    assert not cpu.node_selector and not cpu.tolerations
    assert {"cpu", "memory"} <= set(worker_container(by_queue[executors.CPU_QUEUE]).resources.requests)


def test_each_worker_has_its_own_disks_and_the_runs_instance() -> None:
    """As cluster_stack.start_worker sets a worker up: HOME, TMPDIR, a registry clone and a
    Dagster home of its own; here each is an emptyDir, and DAGSTER_HOME holds the instance's
    dagster.yaml from the chart's ConfigMap, at the path of the run pods' (a step's instance
    reference names the run pod's directories)."""
    values = load_values()
    launcher = render_run_launcher(values)["config"]
    for name, deployment in deployments(load_workers()).items():
        container = worker_container(deployment)
        assert container.image == image(code_location(values)["image"]), f"{name}: not the code location's image"
        env = {e.name: e for e in container.env}
        volumes = {v.name: v for v in deployment.spec.template.spec.volumes}
        mounts = {m.mount_path: m for m in container.volume_mounts}
        own = {}
        for setting in ("HOME", "TMPDIR", "DAGSTER_HOME", "PLATFORM_ASSETS_WORKSPACE"):
            assert setting in env and env[setting].value, f"{name}: {setting} is not set"
            mount = mounts.get(env[setting].value)
            assert mount and volumes[mount.name].empty_dir is not None, f"{name}: {setting} is not on an emptyDir"
            own[setting] = mount.name
        assert len(set(own.values())) == len(own), f"{name}: {own} share a volume"

        assert env["DAGSTER_HOME"].value == launcher["dagster_home"]
        instance = mounts[f"{launcher['dagster_home']}/dagster.yaml"]
        assert instance.sub_path == "dagster.yaml"
        assert volumes[instance.name].config_map.name == launcher["instance_config_map"]
        password = env["DAGSTER_PG_PASSWORD"].value_from.secret_key_ref
        assert (password.name, password.key) == (launcher["postgres_password_secret"], PG_PASSWORD_KEY)


# --- values.yaml --------------------------------------------------------------------------------


def test_the_rendered_instance_validates_class_by_class(instance_env: dict, tmp_path: Path) -> None:
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(instance_env))
    dagster_instance_config(str(tmp_path))  # the whole file, as the instance loads it
    for key in ("run_storage", "event_log_storage", "schedule_storage", "run_launcher", "run_coordinator"):
        configured(instance_env[key], key)
    configured(instance_env["compute_logs"], "compute_logs")


def test_the_run_queue_sensors_storage_and_logs_are_productions(instance_env: dict, monkeypatch) -> None:
    """One source of truth: values.yaml must say what deploy/production/dagster.yaml says."""
    production = yaml.safe_load(PRODUCTION.read_text())
    for name in env_references(production):
        monkeypatch.setenv(name, os.environ.get(name) or f"{name.lower()}-value")
    for key in ("run_coordinator", "compute_logs"):
        assert (instance_env[key]["module"], instance_env[key]["class"]) == (
            production[key]["module"],
            production[key]["class"],
        ), key
        assert configured(instance_env[key], key) == configured(production[key], f"production {key}"), key
    assert instance_env["sensors"] == production["sensors"]
    assert instance_env["telemetry"] == production["telemetry"]

    # The same PostgreSQL settings: production's from DAGSTER_PG_*, the chart's written in
    # values.yaml, but the password from the environment in both.
    ours = instance_env["run_storage"]["config"]["postgres_db"]
    theirs = production["storage"]["postgres"]["postgres_db"]
    assert set(theirs) <= set(ours), f"production's {sorted(theirs)}, the chart's {sorted(ours)}"
    assert ours["password"] == theirs["password"] == {"env": "DAGSTER_PG_PASSWORD"}


def test_a_real_run_launcher_builds_a_runs_job(instance_env: dict, tmp_path: Path) -> None:
    """The K8sRunLauncher from the rendered config (a kubeconfig of its own in place of the
    cluster's service account: no API server is called) builds a run's Job as it does before
    creating it: the code location's container context merged over its own."""
    values = load_values()
    config = configured(instance_env["run_launcher"], "run_launcher")
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "none", "cluster": {"server": "https://127.0.0.1:9"}}],
                "users": [{"name": "none", "user": {"token": "none"}}],
                "contexts": [{"name": "none", "context": {"cluster": "none", "user": "none"}}],
                "current-context": "none",
            }
        )
    )
    launcher = K8sRunLauncher.from_config_value(
        None, config | {"load_incluster_config": False, "kubeconfig_file": str(kubeconfig)}
    )
    location_image = image(code_location(values)["image"])
    origin = RepositoryPythonOrigin(
        executable_path="/usr/local/bin/python",
        code_pointer=ModuleCodePointer("platform_assets.definitions", "defs"),
        container_image=location_image,
        container_context=render_location_container_context(values),
    )
    run = dg.DagsterRun(job_name="events_job", job_code_origin=JobPythonOrigin("events_job", origin))
    context = launcher.get_container_context_for_run(run)
    job = construct_dagster_k8s_job(  # as K8sRunLauncher._launch_k8s_job_with_args does
        job_config=context.get_k8s_job_config(job_image=location_image, run_launcher=launcher),
        args=["dagster", "api", "execute_run", "{}"],
        job_name=f"dagster-run-{run.run_id}",
        pod_name=f"dagster-run-{run.run_id}",
        component="run_worker",
        user_defined_k8s_config=context.run_k8s_config,
        labels={"dagster/job": run.job_name, "dagster/run-id": run.run_id},
        env_vars=[{"name": "DAGSTER_RUN_JOB_NAME", "value": run.job_name}],
    )
    assert isinstance(job, kubernetes.client.V1Job)
    manifest = kubernetes.client.ApiClient().sanitize_for_serialization(job)
    strict_model(kubernetes.client.V1Job, manifest, "the run's Job")  # what the API server would get

    (container,) = job.spec.template.spec.containers
    assert container.image == location_image
    wanted = values["runLauncher"]["config"]["k8sRunLauncher"]["runK8sConfig"]["containerConfig"]["resources"]
    assert kubernetes.client.ApiClient().sanitize_for_serialization(container.resources) == wanted
    password = {e.name: e for e in container.env}["DAGSTER_PG_PASSWORD"].value_from.secret_key_ref
    assert (password.name, password.key) == (pg_secret(values), PG_PASSWORD_KEY)
    run_pod_env = pod_settings(container, load_workers())
    assert_every_setting(run_pod_env, instance_env, "a run's pod")


# --- every pod's settings -----------------------------------------------------------------------


def pod_settings(container: kubernetes.client.V1Container | dict, objects: dict, chart_pod: bool = False) -> dict:
    """The variables a container gets, name -> value (a placeholder for a Secret's): its `env`
    and the ConfigMaps of workers.yaml it reads whole. A Secret read whole (envFrom) adds
    nothing here: its keys are written nowhere. A chart pod also gets DAGSTER_HOME and
    DAGSTER_PG_PASSWORD from the chart."""
    if isinstance(container, dict):  # a chart pod's values: env, envConfigMaps
        env = [strict_model(kubernetes.client.V1EnvVar, e, "env") for e in container.get("env") or []]
        maps = _names(container.get("envConfigMaps"))
    else:
        env = container.env or []
        maps = [s.config_map_ref.name for s in container.env_from or [] if s.config_map_ref]
    ours = config_maps(objects)
    settings = {}
    for name in maps:
        if name in ours:
            settings |= ours[name]
        else:
            assert name.startswith(RELEASE), f"ConfigMap {name} is neither in workers.yaml nor the chart's"
    if chart_pod:
        settings |= {"DAGSTER_HOME": CHART_DAGSTER_HOME, "DAGSTER_PG_PASSWORD": "secret"}
    for var in env:
        settings[var.name] = var.value if var.value is not None else "secret"
    return settings


# Values a Secret would hold, shaped as the code checks them.
SECRET_EXAMPLES = {
    "PLATFORM_ASSETS_BROKER_URL": "redis://broker:6379/0",
    "PLATFORM_ASSETS_APP_DB_URL": "postgresql://reader@db/app",
    "PLATFORM_ASSETS_REGISTRY_GIT_REMOTE": "https://git.example/data/registry.git",
}


def assert_every_setting(settings: dict, instance: dict, pod: str, loads_code: bool = True) -> None:
    """`pod` gets what the instance reads and, where it loads the definitions, what the project's
    resources and executor read: they load with nothing else in the environment, and every
    setting left for run time (dg.EnvVar) is there too."""
    missing = sorted(set(env_references(instance)) - set(settings))
    assert not missing, f"{pod}: the instance reads {missing}, which it does not get"
    missing = sorted(S3_CREDENTIALS - set(settings))
    assert not missing, f"{pod}: no S3 credentials {missing}"
    if not loads_code:
        return
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith(("PLATFORM_ASSETS_", "AWS_", "DAGSTER_")):
                patch.delenv(name)
        for name, value in settings.items():
            patch.setenv(name, SECRET_EXAMPLES.get(name, value) if value == "secret" else value)
        assert resources.deployment() == "cluster", f"{pod}: PLATFORM_ASSETS_DEPLOYMENT={resources.deployment()}"
        required = {s.name for s in SETTINGS.values() if "cluster" in s.required_in}
        missing = sorted(required - set(settings))
        assert not missing, f"{pod}: the cluster deployment requires {missing}"
        for setting in SETTINGS.values():  # each value the pod gets, checked as the code checks it
            try:
                setting.read()
            except ValueError as exc:
                pytest.fail(f"{pod}: {exc}")
        try:
            built = resources.build_resources()
            executors.step_executor()  # the broker, redelivery and queue-wait settings, as the definitions read them
        except ValueError as exc:
            pytest.fail(f"{pod}: {exc}")
        deferred = {
            value.env_var_name
            for resource in built.values()
            for field in type(resource).model_fields
            if isinstance(value := getattr(resource, field), dg.EnvVar)
        }
        missing = sorted(deferred - set(settings))
        assert not missing, f"{pod}: the resources read {missing} at run time, which it does not get"


def test_every_pod_gets_the_settings_the_code_and_the_instance_read(instance_env: dict) -> None:
    values, objects = load_values(), load_workers()
    for name, deployment in deployments(objects).items():
        assert_every_setting(pod_settings(worker_container(deployment), objects), instance_env, f"worker {name}")
    location = code_location(values)
    assert_every_setting(pod_settings(location, objects, chart_pod=True), instance_env, "the code location")
    for part in ("dagsterWebserver", "dagsterDaemon"):
        settings = pod_settings(values[part], objects, chart_pod=True)
        assert_every_setting(settings, instance_env, part, loads_code=False)
        assert values[part]["image"] == location["image"], f"{part}: not the code location's image"
