"""The operator's image, built from the project's Dockerfile with podman and run the way the
chart runs it: the Deployment's args, env and security context (uid 10001, read-only root,
no capabilities, no privilege escalation, a tmpfs for /tmp), credentials mounted where a
pod finds its ServiceAccount's, against the local control plane; it reconciles a topology.

conclave_harness.images makes the base with debootstrap (no image registry is reachable) and
keeps podman's store under ~/.cache/conclave, so only the first run pays for the base (~30 s)
and the layers (~40 s); later builds reuse every layer. The container uses the host network,
to reach the API server on loopback as a pod reaches its Service IP.
"""

from __future__ import annotations

import contextlib
import shutil
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from chart_tools import Helm, apply_crds, static_topology, value_args
from conclave_harness import images, tools
from conclave_harness.errors import BuildError
from conclave_harness.localcluster.clusters import free_port
from monitoring import CHART
from support import Cluster, eventually, read

RELEASE = "imaged"
SERVICE_ACCOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"


@pytest.fixture(scope="module")
def crds(cluster: Cluster) -> None:
    apply_crds(tools.ensure_tools().kubectl, cluster.kubeconfig)


@pytest.fixture(scope="module")
def image() -> str:
    try:
        podman = images.Podman.cached()
        seconds = podman.build()
    except BuildError as error:
        pytest.fail(f"the image did not build: {error}")
    print(f"built {images.IMAGE} in {seconds:.1f}s")  # shown with -s, and on failure
    return images.IMAGE


def podman_options(container: dict[str, Any], pod: dict[str, Any]) -> list[str]:
    """The chart's container and pod settings as podman flags: security context, env, /tmp."""
    security = {**pod.get("securityContext", {}), **container.get("securityContext", {})}
    options = [f"--user={security['runAsUser']}:{security['runAsGroup']}"]
    if security.get("readOnlyRootFilesystem"):
        options.append("--read-only")
    options += [f"--cap-drop={cap}" for cap in security.get("capabilities", {}).get("drop", [])]
    if security.get("allowPrivilegeEscalation") is False:
        options.append("--security-opt=no-new-privileges")
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    for mount in container.get("volumeMounts", []):
        empty = volumes[mount["name"]]["emptyDir"]  # the chart mounts only emptyDirs
        size = empty.get("sizeLimit", "64Mi").removesuffix("i").lower()  # 64Mi is tmpfs' 64m
        options.append(f"--tmpfs={mount['mountPath']}:rw,size={size}")
    return options


def service_account_files(
    api_client: client.ApiClient, namespace: str, account: str, ca: Path, at: Path
) -> Path:
    """What the kubelet mounts for a pod's ServiceAccount: a token, the cluster's CA, the namespace."""
    token = client.CoreV1Api(api_client).create_namespaced_service_account_token(
        account, namespace, {"spec": {"expirationSeconds": 3600}}
    )
    at.mkdir(mode=0o755)
    (at / "token").write_text(token.status.token)
    shutil.copyfile(ca, at / "ca.crt")
    (at / "namespace").write_text(namespace)
    for path in at.iterdir():
        path.chmod(0o644)  # readable by uid 10001, as the projected volume is
    return at


@contextlib.contextmanager
def running(image: str, options: list[str], args: list[str]) -> Iterator[str]:
    podman = images.Podman.cached()
    name = f"conclave-e2e-{uuid.uuid4().hex[:6]}"
    podman.start(name, image, options, args)
    try:
        yield name
    finally:
        print(f"--- container log:\n{podman.remove(name)}")  # shown on failure


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@pytest.mark.usefixtures("crds")
def test_the_image_runs_as_the_chart_runs_it_and_reconciles_a_topology(
    image: str, cluster: Cluster, api_client: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    core = client.CoreV1Api(api_client)
    home = f"image-home-{uuid.uuid4().hex[:5]}"
    core.create_namespace({"metadata": {"name": home, "labels": {"conclave.dev/test": "true"}}})
    helm = Helm.for_cluster(cluster.kubeconfig)
    port = free_port()  # host network: the chart's 8080 may be taken on this machine
    values = {
        "watchNamespaces": [namespace],
        "crds": {"enabled": False},
        "healthPort": port,
        "logFormat": "plain",
    }
    try:
        # The chart's RBAC and ServiceAccount; the container plays its Deployment's pod.
        helm.run(
            "install", RELEASE, str(CHART), "--namespace", home, *value_args({**values, "replicaCount": 0})
        )
        objects = helm.template(RELEASE, home, values)
        deployment = next(o for o in objects if o["kind"] == "Deployment")
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        kubeconfig = yaml.safe_load(cluster.kubeconfig.read_text())
        server = kubeconfig["clusters"][0]["cluster"]
        host, _, api_port = server["server"].removeprefix("https://").rpartition(":")
        mounted = service_account_files(
            api_client,
            home,
            pod["serviceAccountName"],
            Path(server["certificate-authority"]),
            tmp_path / "sa",
        )
        environment = {"KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": api_port,
                       "POD_NAME": f"{RELEASE}-e2e", "POD_NAMESPACE": home}  # fmt: skip
        options = [
            *podman_options(container, pod),
            f"--volume={mounted}:{SERVICE_ACCOUNT}:ro",
            *(f"--env={key}={value}" for key, value in environment.items()),
        ]
        with running(image, options, container["args"]):
            eventually(lambda: healthy(port), timeout=60)
            static_topology(api_client, namespace, "chat@10.0.0.1", "chat@10.0.0.2")
            status = eventually(
                lambda: (
                    read(api_client, namespace, "clustertopologies", "chat")
                    .get("status", {})
                    .get("memberCount")
                    == 2
                    and read(api_client, namespace, "clustertopologies", "chat")["status"]
                ),
                timeout=60,
            )
            assert [m["name"] for m in status["members"]] == ["chat@10.0.0.1", "chat@10.0.0.2"]
            lease = client.CoordinationV1Api(api_client).read_namespaced_lease(f"{RELEASE}-conclave", home)
            assert lease.spec.holder_identity == f"{RELEASE}-e2e"
    finally:
        helm.attempt("uninstall", RELEASE, "--namespace", home)
        with contextlib.suppress(ApiException):
            core.delete_namespace(home)
