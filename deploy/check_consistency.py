#!/usr/bin/env python3
"""Cross-file checks for deploy/: the things no single-file validator can see.

Run by deploy/check.sh (needs PyYAML, which kubernetes-validate brings in). Prints one
line per problem and exits 1 if there is any.

Checked: the embedded config.toml parses and listens on 0.0.0.0:PORT; PORT is the same
in the ConfigMap, the StatefulSet (containerPort, probes, scrape annotation), the Service
and the Dockerfile's EXPOSE; the container arguments match the Dockerfile's CMD and the
unit's ExecStart; names line up (Secret, ConfigMap, Service, PVC); every *_env variable
named by the config is a key of the example Secret and vice versa; the grace period
covers the unit's TimeoutStopSec; the kustomization lists existing files and never the
example Secret; the two dockerignore copies are identical. For kubernetes-postgres/ (two
replicas on PostgreSQL): the config's [store] is postgres with its connection string from
the Secret, the Deployment runs at least two replicas with required anti-affinity by node,
the PodDisruptionBudget selects its pods and keeps one, and it shares the StatefulSet's pod
settings (image, port, probes, Secret, ConfigMap) but for the data volume.
"""

import json
import re
import shlex
import sys
from pathlib import Path

import yaml

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib

DEPLOY = Path(__file__).resolve().parent
K8S = DEPLOY / "kubernetes"
problems = []


def fail(msg):
    problems.append(msg)


def load(name, base=None):
    with open((base or K8S) / name, encoding="utf-8") as f:
        docs = [d for d in yaml.safe_load_all(f) if d is not None]
    if len(docs) != 1:
        fail(f"kubernetes/{name}: expected exactly one document, found {len(docs)}")
    return docs[0] if docs else {}


def seconds(text):
    m = re.fullmatch(r"(\d+)(s|min|m)?", text.strip())
    if not m:
        fail(f"cannot read a duration from {text!r}")
        return 0
    n = int(m.group(1))
    return n * 60 if m.group(2) in ("min", "m") else n


configmap = load("configmap.yaml")
secret = load("secret.example.yaml")
service = load("service.yaml")
sts = load("statefulset.yaml")
kustomization = load("kustomization.yaml")

# --- config.toml inside the ConfigMap ---------------------------------------------------
config = {}
try:
    config = tomllib.loads(configmap["data"]["config.toml"])
except (KeyError, TypeError):
    fail("configmap.yaml: no data.config.toml")
except tomllib.TOMLDecodeError as e:
    fail(f"configmap.yaml: config.toml is not valid TOML: {e}")

listen = config.get("http", {}).get("listen", "")
m = re.fullmatch(r"0\.0\.0\.0:(\d+)", listen)
if not m:
    fail(f"configmap.yaml: [http] listen must be 0.0.0.0:PORT for kubelet probes, got {listen!r}")
port = int(m.group(1)) if m else None

data_dir = config.get("bot", {}).get("data_dir")
if data_dir != "/var/lib/opsgate":
    fail(f"configmap.yaml: [bot] data_dir should be /var/lib/opsgate, got {data_dir!r}")

env_names = {"DISCORD_TOKEN"}
for name, account in config.get("accounts", {}).items():
    for key, value in account.items():
        if key.endswith("_env"):
            env_names.add(value)
        if key.endswith("_file"):
            fail(f"configmap.yaml: accounts.{name}.{key}: use *_env with the Secret in Kubernetes")
for key, value in config.get("http", {}).items():
    if key.endswith("_env"):
        env_names.add(value)
    if key.endswith("_file"):
        fail(f"configmap.yaml: http.{key}: use *_env with the Secret in Kubernetes")
secret_keys = set((secret.get("stringData") or {}).keys())
for missing in sorted(env_names - secret_keys):
    fail(f"secret.example.yaml: no key {missing} (named by config.toml)")
for extra in sorted(secret_keys - env_names):
    fail(f"secret.example.yaml: key {extra} is not named by config.toml")

# --- StatefulSet ---------------------------------------------------------------------------
spec = sts.get("spec", {})
pod = spec.get("template", {}).get("spec", {})
containers = pod.get("containers", [])
c = containers[0] if containers else {}
if len(containers) != 1:
    fail("statefulset.yaml: expected exactly one container")
if spec.get("replicas") != 1:
    fail("statefulset.yaml: replicas must be 1 (one gateway session, one sled store)")
if spec.get("serviceName") != service.get("metadata", {}).get("name"):
    fail("statefulset.yaml: serviceName does not name the Service in service.yaml")
if service.get("spec", {}).get("clusterIP") != "None":
    fail("service.yaml: must be headless (clusterIP: None)")

ports = {p.get("name"): p.get("containerPort") for p in c.get("ports", [])}
if ports.get("health") != port:
    fail(f"statefulset.yaml: containerPort 'health' is {ports.get('health')}, config listens on {port}")
annotations = spec.get("template", {}).get("metadata", {}).get("annotations", {})
if annotations.get("prometheus.io/port") != str(port):
    fail("statefulset.yaml: prometheus.io/port annotation does not match the health port")
for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz"),
                    ("startupProbe", "/healthz")):
    get = c.get(probe, {}).get("httpGet", {})
    if get.get("path") != path or get.get("port") not in ("health", port):
        fail(f"statefulset.yaml: {probe} should be httpGet {path} on port 'health'")

svc_ports = service.get("spec", {}).get("ports", [])
if not any(p.get("port") == port and p.get("targetPort") in ("health", port) for p in svc_ports):
    fail(f"service.yaml: no port {port} targeting 'health'")
svc_selector = service.get("spec", {}).get("selector", {})
pod_labels = spec.get("template", {}).get("metadata", {}).get("labels", {})
if not svc_selector or any(pod_labels.get(k) != v for k, v in svc_selector.items()):
    fail("service.yaml: selector does not match the StatefulSet's pod labels")

env_from = [e.get("secretRef", {}).get("name") for e in c.get("envFrom", [])]
if secret.get("metadata", {}).get("name") not in env_from:
    fail("statefulset.yaml: envFrom does not reference the Secret in secret.example.yaml")

volumes = {v.get("name"): v for v in pod.get("volumes", [])}
mounts = {m.get("mountPath"): m.get("name") for m in c.get("volumeMounts", [])}
cfg_vol = volumes.get(mounts.get("/etc/opsgate"), {})
if cfg_vol.get("configMap", {}).get("name") != configmap.get("metadata", {}).get("name"):
    fail("statefulset.yaml: /etc/opsgate is not mounted from the ConfigMap in configmap.yaml")
claims = {t.get("metadata", {}).get("name"): t for t in spec.get("volumeClaimTemplates", [])}
data_claim = claims.get(mounts.get("/var/lib/opsgate"))
if not data_claim:
    fail("statefulset.yaml: /var/lib/opsgate is not mounted from a volumeClaimTemplate")
elif data_claim.get("spec", {}).get("accessModes") not in (["ReadWriteOnce"], ["ReadWriteOncePod"]):
    fail("statefulset.yaml: the data claim must be ReadWriteOnce (or ReadWriteOncePod)")

grace = pod.get("terminationGracePeriodSeconds", 30)

# --- Dockerfile --------------------------------------------------------------------------------
dockerfile = (DEPLOY / "container" / "Dockerfile").read_text(encoding="utf-8")
exposed = re.findall(r"^EXPOSE\s+(\d+)", dockerfile, re.M)
if exposed != [str(port)]:
    fail(f"container/Dockerfile: EXPOSE {exposed} does not match the health port {port}")
cmd = re.findall(r"^CMD\s+(\[.*\])\s*$", dockerfile, re.M)
entry = re.findall(r"^ENTRYPOINT\s+(\[.*\])\s*$", dockerfile, re.M)
if len(cmd) != 1 or len(entry) != 1:
    fail("container/Dockerfile: expected one exec-form ENTRYPOINT and one CMD")
else:
    if json.loads(entry[0]) != ["opsgate"]:
        fail("container/Dockerfile: ENTRYPOINT should be [\"opsgate\"]")
    if json.loads(cmd[0]) != c.get("args"):
        fail("statefulset.yaml: args differ from the Dockerfile's CMD")
if not re.search(r"^VOLUME\s+\[\"/var/lib/opsgate\"\]", dockerfile, re.M):
    fail("container/Dockerfile: VOLUME /var/lib/opsgate missing")
user = re.findall(r"^USER\s+(\S+)", dockerfile, re.M)
run_as = f"{pod.get('securityContext', {}).get('runAsUser')}:{pod.get('securityContext', {}).get('runAsGroup')}"
if user[-1:] != [run_as]:
    fail(f"container/Dockerfile: USER {user[-1:]} differs from the pod's runAsUser:runAsGroup {run_as}")

ignore_a = (DEPLOY / "container" / "dockerignore").read_bytes()
ignore_b = (DEPLOY / "container" / "Dockerfile.dockerignore").read_bytes()
if ignore_a != ignore_b:
    fail("container/dockerignore and container/Dockerfile.dockerignore differ (keep them identical)")

# --- systemd unit ---------------------------------------------------------------------------------
unit = (DEPLOY / "systemd" / "opsgate.service").read_text(encoding="utf-8")
settings = {}
for line in unit.splitlines():
    m = re.match(r"^([A-Za-z]+)=(.*)$", line)
    if m:
        settings.setdefault(m.group(1), []).append(m.group(2))
exec_start = shlex.split(settings.get("ExecStart", [""])[-1])
if exec_start[1:] != c.get("args"):
    fail("systemd/opsgate.service: ExecStart arguments differ from the container's")
stop = seconds(settings.get("TimeoutStopSec", ["90s"])[-1])
if grace < stop:
    fail(f"statefulset.yaml: terminationGracePeriodSeconds {grace} < the unit's TimeoutStopSec {stop}")
if settings.get("DynamicUser") != ["yes"] and not settings.get("User"):
    fail("systemd/opsgate.service: needs DynamicUser=yes or User=")
if settings.get("StateDirectory") != ["opsgate"]:
    fail("systemd/opsgate.service: StateDirectory=opsgate missing")
if settings.get("KillSignal") != ["SIGTERM"]:
    fail("systemd/opsgate.service: KillSignal=SIGTERM missing")

# --- kustomization ---------------------------------------------------------------------------------
resources = kustomization.get("resources", [])
for r in resources:
    if not (K8S / r).is_file():
        fail(f"kustomization.yaml: resource {r} does not exist")
if "secret.example.yaml" in resources:
    fail("kustomization.yaml: must not list secret.example.yaml (it would overwrite the real Secret)")
for name in ("configmap.yaml", "service.yaml", "statefulset.yaml"):
    if name not in resources:
        fail(f"kustomization.yaml: {name} is not listed")

# --- kubernetes-postgres/: two replicas on PostgreSQL ---------------------------------------
PG = DEPLOY / "kubernetes-postgres"
pg_configmap = load("configmap.yaml", PG)
pg_secret = load("secret.example.yaml", PG)
pg_service = load("service.yaml", PG)
deployment = load("deployment.yaml", PG)
pdb = load("pdb.yaml", PG)
pg_kustomization = load("kustomization.yaml", PG)
pg_config = {}
try:
    pg_config = tomllib.loads(pg_configmap["data"]["config.toml"])
except (KeyError, TypeError, tomllib.TOMLDecodeError) as e:
    fail(f"kubernetes-postgres/configmap.yaml: config.toml unreadable: {e}")
store = pg_config.get("store", {})
if store.get("backend") != "postgres":
    fail("kubernetes-postgres/configmap.yaml: [store] backend must be \"postgres\"")
if "url_file" in store or not store.get("url_env"):
    fail("kubernetes-postgres/configmap.yaml: [store] url_env (from the Secret) is required")
if pg_config.get("bot", {}).get("data_dir"):
    fail("kubernetes-postgres/configmap.yaml: no [bot] data_dir (the jobs are in PostgreSQL)")
pg_listen = pg_config.get("http", {}).get("listen", "")
if pg_listen != listen:
    fail(f"kubernetes-postgres/configmap.yaml: [http] listen {pg_listen!r} differs from {listen!r}")
pg_env = {"DISCORD_TOKEN"}
for section in list(pg_config.get("accounts", {}).values()) + [pg_config.get("http", {}), store]:
    for key, value in section.items():
        if key.endswith("_env"):
            pg_env.add(value)
pg_secret_keys = set((pg_secret.get("stringData") or {}).keys())
for missing in sorted(pg_env - pg_secret_keys):
    fail(f"kubernetes-postgres/secret.example.yaml: no key {missing} (named by config.toml)")
for extra in sorted(pg_secret_keys - pg_env):
    fail(f"kubernetes-postgres/secret.example.yaml: key {extra} is not named by config.toml")
without_store = {k: v for k, v in pg_config.items() if k != "store"}
with_data = dict(without_store, bot=dict(without_store.get("bot", {}), data_dir="/var/lib/opsgate"))
if with_data != config:
    fail("kubernetes-postgres/configmap.yaml: config.toml differs from kubernetes/'s beyond [store] and data_dir")

dspec = deployment.get("spec", {})
if not isinstance(dspec.get("replicas"), int) or dspec.get("replicas") < 2:
    fail("kubernetes-postgres/deployment.yaml: replicas must be 2 or more")
dpod = dspec.get("template", {}).get("spec", {})
dlabels = dspec.get("template", {}).get("metadata", {}).get("labels", {})
if dspec.get("selector", {}).get("matchLabels") != dlabels:
    fail("kubernetes-postgres/deployment.yaml: selector differs from the pod labels")
anti = (dpod.get("affinity", {}).get("podAntiAffinity", {})
        .get("requiredDuringSchedulingIgnoredDuringExecution", []))
if not any(t.get("topologyKey") == "kubernetes.io/hostname"
           and t.get("labelSelector", {}).get("matchLabels") == dlabels for t in anti):
    fail("kubernetes-postgres/deployment.yaml: needs required pod anti-affinity by kubernetes.io/hostname on its own labels")
if pdb.get("spec", {}).get("selector", {}).get("matchLabels") != dlabels:
    fail("kubernetes-postgres/pdb.yaml: selector does not match the Deployment's pods")
if pdb.get("spec", {}).get("minAvailable") != 1 and pdb.get("spec", {}).get("maxUnavailable") != 1:
    fail("kubernetes-postgres/pdb.yaml: keep one replica (minAvailable: 1 or maxUnavailable: 1)")
dcont = (dpod.get("containers") or [{}])[0]
if dcont.get("args") != ["run", "--config", "/etc/opsgate/config.toml"]:
    fail("kubernetes-postgres/deployment.yaml: args should be run --config /etc/opsgate/config.toml")
for key in ("image", "ports", "envFrom", "livenessProbe", "readinessProbe", "securityContext"):
    if dcont.get(key) != c.get(key):
        fail(f"kubernetes-postgres/deployment.yaml: container {key} differs from the StatefulSet's")
if any(m.get("mountPath") == "/var/lib/opsgate" for m in dcont.get("volumeMounts", [])):
    fail("kubernetes-postgres/deployment.yaml: no data volume (the jobs are in PostgreSQL)")
if dpod.get("terminationGracePeriodSeconds", 30) < stop:
    fail("kubernetes-postgres/deployment.yaml: terminationGracePeriodSeconds below the unit's TimeoutStopSec")
if pg_service.get("spec", {}).get("selector") != svc_selector:
    fail("kubernetes-postgres/service.yaml: selector differs from kubernetes/service.yaml's")
pg_resources = pg_kustomization.get("resources", [])
for name in ("configmap.yaml", "service.yaml", "deployment.yaml", "pdb.yaml"):
    if name not in pg_resources:
        fail(f"kubernetes-postgres/kustomization.yaml: {name} is not listed")
for r in pg_resources:
    if not (PG / r).is_file():
        fail(f"kubernetes-postgres/kustomization.yaml: resource {r} does not exist")
if "secret.example.yaml" in pg_resources:
    fail("kubernetes-postgres/kustomization.yaml: must not list secret.example.yaml")

for p in problems:
    print(f"consistency: {p}")
if problems:
    sys.exit(1)
print(f"consistency: ok (health port {port}, {len(env_names)} secret variables, grace {grace}s >= stop {stop}s; "
      f"PostgreSQL set: {dspec.get('replicas')} replicas)")
