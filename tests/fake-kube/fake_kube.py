#!/usr/bin/env python3
"""tests/fake-kube/fake_kube.py: a fake Kubernetes API server for tests.

    fake_kube.py [--port 0] [--bind 127.0.0.1] [--http] [--token T]
                 [--certs-dir DIR] [--require-field-manager] [--nodes N]
                 [--start-delay 0.5] [--spec PATH] [--state-dir DIR]
                 [--metrics-cpu 12m] [--metrics-memory 34Mi]

Speaks the real paths, verbs, status codes and metav1.Status errors of the
parts of the API that lib/driver_k8s.c uses, validates every body against
the release-1.36 OpenAPI spec with strict unknown-field checking, runs a
small StatefulSet controller whose pods really run their container's
command on this host, and records every request.  See README.md.

Prints "READY <port>" on stdout when listening.  Python 3 stdlib plus
python3-jsonschema; the openssl CLI makes the certificates unless --http.
"""

import argparse
import base64
import copy
import datetime
import fcntl
import hashlib
import hmac
import ipaddress
import json
import os
import pty
import re
import select
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jsonschema

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_SPEC = os.path.join(HERE, "..", "..", "..", "shared", "k8s",
                            "swagger-release-1.36.json")
BODY_MAX = 3 * 1024 * 1024      # the real apiserver's request body limit
CONFIGMAP_MAX = 1024 * 1024     # data + binaryData of a ConfigMap
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

# (group, version, plural) -> kind, definition, namespaced, writable
RESOURCES = {
    ("", "v1", "namespaces"): ("Namespace", "io.k8s.api.core.v1.Namespace",
                               False, True),
    ("", "v1", "nodes"): ("Node", "io.k8s.api.core.v1.Node", False, False),
    ("", "v1", "resourcequotas"): ("ResourceQuota",
                                   "io.k8s.api.core.v1.ResourceQuota",
                                   True, True),
    ("", "v1", "persistentvolumeclaims"): (
        "PersistentVolumeClaim", "io.k8s.api.core.v1.PersistentVolumeClaim",
        True, True),
    ("", "v1", "configmaps"): ("ConfigMap", "io.k8s.api.core.v1.ConfigMap",
                               True, True),
    ("", "v1", "services"): ("Service", "io.k8s.api.core.v1.Service",
                             True, True),
    ("", "v1", "pods"): ("Pod", "io.k8s.api.core.v1.Pod", True, False),
    ("networking.k8s.io", "v1", "networkpolicies"): (
        "NetworkPolicy", "io.k8s.api.networking.v1.NetworkPolicy",
        True, True),
    ("apps", "v1", "statefulsets"): ("StatefulSet",
                                     "io.k8s.api.apps.v1.StatefulSet",
                                     True, True),
}
SCALE_DEF = "io.k8s.api.autoscaling.v1.Scale"
DELETE_OPTIONS_DEF = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions"

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
QUANTITY = re.compile(
    r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]+)?$")
ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
CONFIGMAP_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
QTY_SUFFIX = {"": 1, "n": 1e-9, "u": 1e-6, "m": 1e-3, "k": 1e3, "M": 1e6,
              "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18, "Ki": 2 ** 10,
              "Mi": 2 ** 20, "Gi": 2 ** 30, "Ti": 2 ** 40, "Pi": 2 ** 50,
              "Ei": 2 ** 60}


def now_rfc3339():
    return datetime.datetime.now(datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


def quantity_value(q):
    """The numeric value of a Quantity string or number (ValueError)."""
    if isinstance(q, (int, float)) and not isinstance(q, bool):
        return float(q)
    m = QUANTITY.match(q or "")
    if not m:
        raise ValueError(q)
    num = float(m.group(1))
    if q.startswith("-"):
        num = -num
    suf = m.group(3) or ""
    if suf[:1] in ("e", "E"):
        return num * 10 ** int(suf[1:])
    return num * QTY_SUFFIX[suf]


class ApiError(Exception):
    """An error answered as a metav1.Status."""

    REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden",
               404: "NotFound", 405: "MethodNotAllowed", 409: "AlreadyExists",
               413: "RequestEntityTooLarge", 415: "UnsupportedMediaType",
               422: "Invalid", 500: "InternalError"}

    def __init__(self, code, message, reason=None, details=None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason or self.REASONS.get(code, "Unknown")
        self.details = details

    def status(self):
        st = {"kind": "Status", "apiVersion": "v1", "metadata": {},
              "status": "Failure", "message": self.message,
              "reason": self.reason, "code": self.code}
        if self.details is not None:
            st["details"] = self.details
        return st


def not_found(resource, name, group=""):
    res = resource + ("." + group if group else "")
    return ApiError(404, '%s "%s" not found' % (res, name),
                    details={"name": name, "group": group,
                             "kind": resource})


def invalid(kind, group, name, causes):
    """422 Invalid with field causes [(field, message), ...]."""
    qual = kind + ("." + group if group else "")
    text = "; ".join("%s: %s" % (f, m) if f else m for f, m in causes)
    return ApiError(422, '%s "%s" is invalid: %s' % (qual, name, text),
                    details={"name": name, "group": group, "kind": kind,
                             "causes": [{"reason": "FieldValueInvalid",
                                         "message": m, "field": f}
                                        for f, m in causes]})


# ---------------------------------------------------------------- schemas

class Schemas:
    """Validators for the spec's definitions, patched for strictness."""

    def __init__(self, path):
        with open(path, encoding="utf-8") as f:
            spec = json.load(f)
        defs = spec["definitions"]
        qty = "io.k8s.apimachinery.pkg.api.resource.Quantity"
        ios = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
        # The Go types marshal as either form; the spec calls them strings.
        defs[qty] = {"anyOf": [{"type": "number"}, {"type": "string"}]}
        defs[ios] = {"anyOf": [{"type": "integer"}, {"type": "string"}]}
        for name, d in defs.items():
            if name not in (qty, ios):
                self._strict(d)
        self.defs = defs
        self.cache = {}
        self.lock = threading.Lock()

    def _strict(self, node):
        if isinstance(node, dict):
            if "properties" in node and "additionalProperties" not in node:
                node["additionalProperties"] = False
            for k, v in node.items():
                if k != "properties" and k != "enum":
                    self._strict(v)
                elif k == "properties":
                    for sub in v.values():
                        self._strict(sub)
        elif isinstance(node, list):
            for v in node:
                self._strict(v)

    def validator(self, defname):
        with self.lock:
            v = self.cache.get(defname)
            if v is None:
                v = jsonschema.Draft4Validator(
                    {"$ref": "#/definitions/" + defname,
                     "definitions": self.defs})
                self.cache[defname] = v
            return v

    def errors(self, defname, obj):
        """[(field path, message)] of schema violations, sorted."""
        out = []
        for e in self.validator(defname).iter_errors(obj):
            path = ""
            for p in e.absolute_path:
                path += "[%d]" % p if isinstance(p, int) else (
                    ("." if path else "") + str(p))
            msg = e.message
            if e.validator == "additionalProperties":
                extra = [k for k in e.instance if k not in
                         e.schema.get("properties", {})]
                for k in extra:
                    out.append(((path + "." if path else "") + k,
                                'unknown field "%s"' % k))
                continue
            out.append((path, msg))
        out.sort()
        return out[:20]


# ------------------------------------------------------------ merge patch

def merge_patch(target, patch):
    """RFC 7386."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if not isinstance(target, dict):
        target = {}
    out = dict(target)
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def label_match(labels, selector):
    """labelSelector query syntax: a=b, a==b, a!=b, a, !a (comma = and)."""
    labels = labels or {}
    for term in [t.strip() for t in selector.split(",") if t.strip()]:
        if "!=" in term:
            k, v = term.split("!=", 1)
            if labels.get(k.strip()) == v.strip():
                return False
        elif "=" in term:
            k, v = term.replace("==", "=").split("=", 1)
            if labels.get(k.strip()) != v.strip():
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


# ------------------------------------------------------- semantic checks

def check_labels(field, labels, causes):
    for k, v in (labels or {}).items():
        name = k.split("/", 1)[-1]
        prefix = k.split("/", 1)[0] if "/" in k else None
        if len(name) > 63 or not LABEL_NAME.match(name) or (
                prefix is not None and (len(prefix) > 253 or
                                        not DNS1123_SUBDOMAIN.match(prefix))):
            causes.append(("%s" % field, 'Invalid value: "%s": name part '
                           "must consist of alphanumeric characters" % k))
        if not isinstance(v, str) or len(v) > 63 or not LABEL_VALUE.match(v):
            causes.append(("%s" % field, 'Invalid value: "%s": a valid label '
                           "must be an empty string or consist of "
                           "alphanumeric characters" % v))


def check_name(kind, name, causes):
    if not name:
        causes.append(("metadata.name", "Required value: name or "
                       "generateName is required"))
        return
    if kind == "Namespace" or kind == "StatefulSet":
        ok = len(name) <= 63 and DNS1123_LABEL.match(name)
    elif kind == "Service":
        ok = len(name) <= 63 and DNS1035_LABEL.match(name)
    else:
        ok = len(name) <= 253 and DNS1123_SUBDOMAIN.match(name)
    if not ok:
        causes.append(("metadata.name", 'Invalid value: "%s": a lowercase '
                       "RFC 1123 name must consist of lower case "
                       "alphanumeric characters or '-'" % name))


def check_quantities(field, m, causes):
    for k, v in (m or {}).items():
        try:
            if quantity_value(v) < 0:
                causes.append(("%s[%s]" % (field, k), "Invalid value: "
                               "must be greater than or equal to 0"))
        except ValueError:
            causes.append(("%s[%s]" % (field, k), 'Invalid value: "%s": '
                           "quantities must match the regular expression" % v))


def check_pod_spec(field, spec, causes):
    vols = set()
    for i, v in enumerate(spec.get("volumes") or []):
        if not DNS1123_LABEL.match(v.get("name", "")):
            causes.append(("%s.volumes[%d].name" % (field, i),
                           "Invalid value"))
        if v.get("name") in vols:
            causes.append(("%s.volumes[%d].name" % (field, i),
                           "Duplicate value"))
        vols.add(v.get("name"))
    conts = spec.get("containers") or []
    if not conts:
        causes.append(("%s.containers" % field, "Required value"))
    names = set()
    for i, c in enumerate(conts):
        f = "%s.containers[%d]" % (field, i)
        if not DNS1123_LABEL.match(c.get("name", "")) or c["name"] in names:
            causes.append((f + ".name", "Invalid value"))
        names.add(c.get("name"))
        if not c.get("image"):
            causes.append((f + ".image", "Required value"))
        for j, e in enumerate(c.get("env") or []):
            if not ENV_NAME.match(e.get("name", "")):
                causes.append(("%s.env[%d].name" % (f, j), 'Invalid value: '
                               '"%s": a valid environment variable name '
                               "must consist of alphabetic characters, "
                               "digits, '_', '-', or '.'" % e.get("name")))
        for j, vm in enumerate(c.get("volumeMounts") or []):
            if vm.get("name") not in vols:
                causes.append(("%s.volumeMounts[%d].name" % (f, j),
                               'Not found: "%s"' % vm.get("name")))
            if not (vm.get("mountPath") or "").startswith("/"):
                causes.append(("%s.volumeMounts[%d].mountPath" % (f, j),
                               "Invalid value: must be an absolute path"))
        res = c.get("resources") or {}
        check_quantities(f + ".resources.limits", res.get("limits"), causes)
        check_quantities(f + ".resources.requests", res.get("requests"),
                         causes)
        for k, v in (res.get("requests") or {}).items():
            lim = (res.get("limits") or {}).get(k)
            try:
                if lim is not None and quantity_value(v) > quantity_value(lim):
                    causes.append(("%s.resources.requests" % f,
                                   'Invalid value: "%s": must be less than '
                                   "or equal to %s limit of %s" % (v, k, lim)))
            except ValueError:
                pass


def semantic(kind, obj, causes):
    meta = obj.get("metadata") or {}
    check_name(kind, meta.get("name"), causes)
    check_labels("metadata.labels", meta.get("labels"), causes)
    spec = obj.get("spec") or {}
    if kind == "StatefulSet":
        sel = (spec.get("selector") or {}).get("matchLabels") or {}
        tmpl = spec.get("template") or {}
        tl = (tmpl.get("metadata") or {}).get("labels") or {}
        if not sel:
            causes.append(("spec.selector", "Required value"))
        elif any(tl.get(k) != v for k, v in sel.items()):
            causes.append(("spec.template.metadata.labels", "Invalid value: "
                           "`selector` does not match template `labels`"))
        check_labels("spec.template.metadata.labels", tl, causes)
        if spec.get("replicas", 1) < 0:
            causes.append(("spec.replicas", "Invalid value: must be greater "
                           "than or equal to 0"))
        check_pod_spec("spec.template.spec", tmpl.get("spec") or {}, causes)
        if (tmpl.get("spec") or {}).get("restartPolicy", "Always") != "Always":
            causes.append(("spec.template.spec.restartPolicy",
                           'Unsupported value: only "Always" is supported'))
    elif kind == "ConfigMap":
        size = 0
        for sect in ("data", "binaryData"):
            for k, v in (obj.get(sect) or {}).items():
                if not CONFIGMAP_KEY.match(k) or len(k) > 253:
                    causes.append(("%s[%s]" % (sect, k), "Invalid value: a "
                                   "valid config key must consist of "
                                   "alphanumeric characters, '-', '_' or '.'"))
                size += len(k) + len(v.encode() if isinstance(v, str) else b"")
        if size > CONFIGMAP_MAX:
            causes.append(("", "Too long: must have at most 1048576 bytes"))
    elif kind == "PersistentVolumeClaim":
        if not spec.get("accessModes"):
            causes.append(("spec.accessModes", "Required value: at least 1 "
                           "access mode is required"))
        req = (spec.get("resources") or {}).get("requests") or {}
        if "storage" not in req:
            causes.append(("spec.resources[storage]", "Required value"))
        check_quantities("spec.resources.requests", req, causes)
    elif kind == "Service":
        for i, p in enumerate(spec.get("ports") or []):
            if not 1 <= p.get("port", 0) <= 65535:
                causes.append(("spec.ports[%d].port" % i, "Invalid value: "
                               "must be between 1 and 65535, inclusive"))
        if not spec.get("ports") and spec.get("clusterIP") != "None":
            causes.append(("spec.ports", "Required value"))
    elif kind == "ResourceQuota":
        check_quantities("spec.hard", spec.get("hard"), causes)
    elif kind == "NetworkPolicy":
        rules = [("ingress", "from"), ("egress", "to")]
        for sect, peers in rules:
            for i, r in enumerate(spec.get(sect) or []):
                for j, p in enumerate(r.get(peers) or []):
                    ib = p.get("ipBlock")
                    if ib is None:
                        continue
                    f = "spec.%s[%d].%s[%d].ipBlock" % (sect, i, peers, j)
                    try:
                        net = ipaddress.ip_network(ib.get("cidr", ""))
                        for ex in ib.get("except") or []:
                            exn = ipaddress.ip_network(ex)
                            if exn.version != net.version or \
                                    not exn.subnet_of(net):
                                causes.append((f + ".except", "Invalid value:"
                                               ' "%s": must be a strict '
                                               "subset of `cidr`" % ex))
                    except ValueError as e:
                        causes.append((f, "Invalid value: %s" % e))
    elif kind == "Namespace":
        pass


# ---------------------------------------------------------------- the store

class Pod:
    """The host side of a pod: its root, its process and its log."""

    def __init__(self, root):
        self.root = root
        self.proc = None
        self.log = os.path.join(root, "log")
        self.tmux = os.path.join(root, "tmux")
        self.env = {}
        self.mounts = []        # (mountPath, host dir), longest first
        self.started = False
        self.done = False


class State:
    def __init__(self, args, schemas):
        self.args = args
        self.schemas = schemas
        self.lock = threading.RLock()
        self.objs = {}          # (plural, ns, name) -> object
        self.pods = {}          # (ns, name) -> Pod
        self.rv = 1000
        self.requests = []
        self.fails = []         # [prefix, method or None, times]
        self.delays = []        # [prefix, method or None, times, seconds]
        # exec subprotocols this "API server" speaks, best first (an older
        # cluster speaks v4 only: POST /_exec_protocols?only=v4...)
        self.exec_protocols = ["v5.channel.k8s.io", "v4.channel.k8s.io"]
        self.controller_paused = False  # POST /_controller?paused=1
        self.exec_used = []     # the subprotocol of each exec upgrade
        self.exec_conns = set()  # the sockets of the open exec sessions
        self.pvc_root = os.path.join(args.state_dir, "pvcs")
        os.makedirs(self.pvc_root, exist_ok=True)
        for i in range(args.nodes):
            self._add_node(i)

    def _add_node(self, i):
        # Mixed spellings, as real kubelets report them.
        alloc = [{"cpu": "4", "memory": "16Gi",
                  "ephemeral-storage": "100Gi", "pods": "110"},
                 {"cpu": "3500m", "memory": "8388608Ki",
                  "ephemeral-storage": "53687091200", "pods": "110"}][i % 2]
        name = "fake-node-%d" % (i + 1)
        self.objs[("nodes", "", name)] = {
            "kind": "Node", "apiVersion": "v1",
            "metadata": self.meta({"name": name}),
            "status": {"allocatable": dict(alloc), "capacity": dict(alloc),
                       "conditions": [{"type": "Ready", "status": "True"}]}}

    def next_rv(self):
        self.rv += 1
        return str(self.rv)

    def meta(self, m, ns=None):
        m = dict(m)
        m["uid"] = str(uuid.uuid4())
        m["resourceVersion"] = self.next_rv()
        m["creationTimestamp"] = now_rfc3339()
        if ns:
            m["namespace"] = ns
        return m

    # -- pods and the StatefulSet controller

    def tick(self):
        with self.lock:
            for key, sts in list(self.objs.items()):
                if key[0] == "statefulsets" and not self.controller_paused:
                    self._reconcile(key[1], sts)
            for key, pod in list(self.objs.items()):
                if key[0] == "pods":
                    self._pod_step(key[1], pod)

    def _reconcile(self, ns, sts):
        name = sts["metadata"]["name"]
        pname = name + "-0"
        replicas = sts["spec"].get("replicas", 1)
        pod = self.objs.get(("pods", ns, pname))
        if replicas >= 1 and pod is None:
            self._create_pod(ns, sts, pname)
        elif replicas == 0 and pod is not None and \
                "deletionTimestamp" not in pod["metadata"]:
            self.delete_pod(ns, pname)
        pod = self.objs.get(("pods", ns, pname))
        running = 1 if pod is not None and \
            pod["status"].get("phase") == "Running" else 0
        st = {"replicas": 1 if pod is not None else 0,
              "readyReplicas": running, "availableReplicas": running,
              "currentReplicas": 1 if pod is not None else 0,
              "observedGeneration": sts["metadata"].get("generation", 1)}
        if sts.get("status") != st:
            sts["status"] = st

    def _create_pod(self, ns, sts, pname):
        tmpl = copy.deepcopy(sts["spec"]["template"])
        meta = tmpl.get("metadata") or {}
        labels = dict(meta.get("labels") or {})
        labels["statefulset.kubernetes.io/pod-name"] = pname
        labels["apps.kubernetes.io/pod-index"] = "0"
        spec = tmpl["spec"]
        spec.setdefault("restartPolicy", "Always")
        spec.setdefault("terminationGracePeriodSeconds", 30)
        spec["hostname"] = pname
        spec["subdomain"] = sts["spec"].get("serviceName", "")
        pod = {"kind": "Pod", "apiVersion": "v1",
               "metadata": self.meta({
                   "name": pname, "labels": labels,
                   "annotations": dict(meta.get("annotations") or {}),
                   "ownerReferences": [{
                       "apiVersion": "apps/v1", "kind": "StatefulSet",
                       "name": sts["metadata"]["name"],
                       "uid": sts["metadata"]["uid"], "controller": True,
                       "blockOwnerDeletion": True}]}, ns),
               "spec": spec,
               "status": {"phase": "Pending", "qosClass": "Guaranteed",
                          "conditions": [{"type": "PodScheduled",
                                          "status": "False"}]}}
        pod["_start_at"] = time.time() + self.args.start_delay
        self.objs[("pods", ns, pname)] = pod

    def _pod_step(self, ns, pod):
        name = pod["metadata"]["name"]
        st = pod["status"]
        host = self.pods.get((ns, name))
        if "deletionTimestamp" in pod["metadata"]:
            if host is None or host.done:
                self._remove_pod(ns, name)
            return
        if st["phase"] == "Pending" and time.time() >= pod["_start_at"]:
            missing = self._missing_claim(ns, pod)
            if missing:
                st["conditions"] = [{
                    "type": "PodScheduled", "status": "False",
                    "reason": "Unschedulable",
                    "message": 'persistentvolumeclaim "%s" not found' %
                               missing}]
                return
            try:
                host = self._start_container(ns, pod)
            except OSError as e:
                st["phase"] = "Failed"
                st["message"] = "container start failed: %s" % e
                return
            self.pods[(ns, name)] = host
            c = pod["spec"]["containers"][0]
            st.update({
                "phase": "Running", "hostIP": "10.0.0.1",
                "podIP": "10.244.0.%d" % (2 + len(self.pods) % 250),
                "startTime": now_rfc3339(),
                "conditions": [{"type": t, "status": "True"} for t in
                               ("PodScheduled", "Initialized",
                                "ContainersReady", "Ready")],
                "containerStatuses": [{
                    "name": c["name"], "image": c["image"], "ready": True,
                    "restartCount": 0, "started": True,
                    "state": {"running": {"startedAt": now_rfc3339()}}}]})
            pod["spec"]["nodeName"] = "fake-node-1"
            pod["metadata"]["resourceVersion"] = self.next_rv()
        elif st["phase"] == "Running" and host is not None and \
                host.proc.poll() is not None and not host.done:
            # restartPolicy Always: the kubelet would restart it; the
            # fake reports the crash loop and does not run it again.
            host.done = True
            cs = st["containerStatuses"][0]
            cs["ready"] = False
            cs["lastState"] = {"terminated": {"exitCode": host.proc.returncode,
                                              "reason": "Completed" if
                                              host.proc.returncode == 0 else
                                              "Error"}}
            cs["state"] = {"waiting": {"reason": "CrashLoopBackOff"}}
            cs["restartCount"] = 1
            pod["metadata"]["resourceVersion"] = self.next_rv()

    def _missing_claim(self, ns, pod):
        for v in pod["spec"].get("volumes") or []:
            pvc = v.get("persistentVolumeClaim")
            if pvc and ("persistentvolumeclaims", ns,
                        pvc.get("claimName")) not in self.objs:
                return pvc.get("claimName")
        return None

    def pvc_dir(self, ns, claim):
        d = os.path.join(self.pvc_root, ns, claim)
        os.makedirs(d, exist_ok=True)
        return d

    def _start_container(self, ns, pod):
        host = Pod(tempfile.mkdtemp(prefix="fkpod-"))
        os.makedirs(host.tmux, mode=0o700)
        spec = pod["spec"]
        c = spec["containers"][0]
        vols = {v["name"]: v for v in spec.get("volumes") or []}
        for vm in c.get("volumeMounts") or []:
            v = vols[vm["name"]]
            if "configMap" in v:
                d = os.path.join(host.root, "vol", v["name"])
                os.makedirs(d, exist_ok=True)
                cm = self.objs.get(("configmaps", ns,
                                    v["configMap"].get("name")), {})
                mode = v["configMap"].get("defaultMode", 0o644)
                for k, val in (cm.get("data") or {}).items():
                    p = os.path.join(d, k)
                    with open(p, "w", encoding="utf-8") as f:
                        f.write(val)
                    os.chmod(p, mode & 0o777)
            elif "persistentVolumeClaim" in v:
                d = self.pvc_dir(ns, v["persistentVolumeClaim"]["claimName"])
            else:
                d = os.path.join(host.root, "vol", v["name"])
                os.makedirs(d, exist_ok=True)
            host.mounts.append((vm["mountPath"].rstrip("/") or "/", d))
        host.mounts.sort(key=lambda m: -len(m[0]))
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
               "HOSTNAME": pod["metadata"]["name"], "TERM": "xterm",
               "HOME": "/root", "TMUX_TMPDIR": host.tmux, "LANG": "C.UTF-8"}
        for e in c.get("env") or []:
            env[e["name"]] = e.get("value", "")
        env = {k: self.translate(host, v) for k, v in env.items()}
        env["TMUX_TMPDIR"] = host.tmux
        os.makedirs(env["HOME"], exist_ok=True)
        host.env = env
        argv = [self.translate(host, a) for a in
                (c.get("command") or []) + (c.get("args") or [])]
        if not argv:
            argv = ["/bin/sh"]
        cwd = self.translate(host, c.get("workingDir") or "/root")
        if not os.path.isdir(cwd):
            cwd = host.root
        with open(host.log, "wb") as logf:
            host.proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=logf,
                stderr=subprocess.STDOUT, cwd=cwd, env=env,
                start_new_session=True)
        host.started = True
        return host

    def translate(self, host, s):
        """A container path (or a string starting with one) on this host."""
        if s == "/root" or s.startswith("/root/"):
            for mp, d in host.mounts:
                if s == mp or s.startswith(mp + "/"):
                    return d + s[len(mp):]
            return os.path.join(host.root, "root") + s[len("/root"):]
        for mp, d in host.mounts:
            if s == mp or s.startswith(mp + "/"):
                return d + s[len(mp):]
        return s

    def delete_pod(self, ns, name):
        pod = self.objs.get(("pods", ns, name))
        if pod is None:
            return None
        if "deletionTimestamp" not in pod["metadata"]:
            pod["metadata"]["deletionTimestamp"] = now_rfc3339()
            pod["metadata"]["resourceVersion"] = self.next_rv()
            host = self.pods.get((ns, name))
            if host is None:
                return pod
            grace = min(pod["spec"].get("terminationGracePeriodSeconds", 30),
                        self.args.max_grace)
            threading.Thread(target=self._kill, args=(host, grace),
                             daemon=True).start()
        return pod

    def _kill(self, host, grace):
        try:
            os.killpg(host.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            host.proc.wait(grace)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(host.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            host.proc.wait()
        # tmux daemonizes out of the process group; end its server too.
        subprocess.run(["tmux", "kill-server"], env=host.env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       check=False)
        host.done = True

    def _remove_pod(self, ns, name):
        self.objs.pop(("pods", ns, name), None)
        host = self.pods.pop((ns, name), None)
        if host is not None:
            shutil.rmtree(host.root, ignore_errors=True)

    def shutdown(self):
        with self.lock:
            hosts = list(self.pods.values())
        for h in hosts:
            if not h.done:
                self._kill(h, 1)
            shutil.rmtree(h.root, ignore_errors=True)


# ---------------------------------------------------------------- handler

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-kube/1.36"

    def log_message(self, fmt, *args):
        if self.server.state.args.verbose:
            sys.stderr.write("fake-kube: " + (fmt % args) + "\n")

    # -- plumbing

    def send_json(self, code, obj, extra=None):
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-cache, private")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def read_body(self):
        te = self.headers.get("Transfer-Encoding", "")
        if "chunked" in te.lower():
            raise ApiError(400, "chunked request bodies are not supported "
                           "by the fake")
        try:
            n = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            raise ApiError(400, "bad Content-Length")
        if n > BODY_MAX:
            # Read and drop so the connection stays usable.
            left = n
            while left > 0:
                chunk = self.rfile.read(min(left, 65536))
                if not chunk:
                    break
                left -= len(chunk)
            raise ApiError(413, "the request body is too large")
        return self.rfile.read(n) if n > 0 else b""

    def authorized(self):
        st = self.server.state
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Bearer ") and hmac.compare_digest(
                auth[7:].encode(), st.args.token.encode()):
            return True
        if auth:
            return False    # a wrong token fails even with a certificate
        try:
            cert = self.connection.getpeercert()
        except (AttributeError, ValueError):
            cert = None
        return bool(cert)

    def do_GET(self):
        self.handle_any("GET")

    def do_POST(self):
        self.handle_any("POST")

    def do_PUT(self):
        self.handle_any("PUT")

    def do_PATCH(self):
        self.handle_any("PATCH")

    def do_DELETE(self):
        self.handle_any("DELETE")

    def handle_any(self, method):
        st = self.server.state
        url = urllib.parse.urlsplit(self.path)
        path = url.path
        query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        body = b""
        try:
            if method in ("POST", "PUT", "PATCH", "DELETE"):
                body = self.read_body()
        except ApiError as e:
            self.send_json(e.code, e.status())
            return
        if path.startswith("/_"):
            self.control(method, path, query, body)
            return
        rec = {"method": method, "path": path, "query": query,
               "content_type": self.headers.get("Content-Type"),
               "user_agent": self.headers.get("User-Agent"),
               "body": None, "status": None}
        if body:
            try:
                rec["body"] = json.loads(body)
            except ValueError:
                rec["body"] = body.decode("utf-8", "replace")
        with st.lock:
            st.requests.append(rec)
        try:
            if not self.authorized():
                raise ApiError(401, "Unauthorized")
            pause = 0
            with st.lock:
                for d in st.delays:
                    if d[2] > 0 and path.startswith(d[0]) and \
                            d[1] in (None, method):
                        d[2] -= 1
                        pause = d[3]
                        break
            if pause:
                time.sleep(pause)       # a hung API server, for a while
            with st.lock:
                for f in st.fails:
                    if f[2] > 0 and path.startswith(f[0]) and \
                            f[1] in (None, method):
                        f[2] -= 1
                        raise ApiError(500, "injected failure")
            if st.args.require_field_manager and \
                    method in ("POST", "PUT", "PATCH") and \
                    query.get("fieldManager") != ["devpocket"]:
                raise ApiError(400, "fieldManager=devpocket is required by "
                               "this fake (--require-field-manager)")
            code, obj = self.route(method, path, query, body)
        except ApiError as e:
            rec["status"] = e.code
            self.send_json(e.code, e.status())
            return
        except _Streamed:
            rec["status"] = 200
            return
        except Exception as e:      # a bug in the fake: say so loudly
            import traceback
            traceback.print_exc()
            rec["status"] = 500
            self.send_json(500, ApiError(500, "fake bug: %r" % e).status())
            return
        rec["status"] = code
        if isinstance(obj, (bytes, str)):
            data = obj.encode() if isinstance(obj, str) else obj
            self.send_response(code)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        else:
            self.send_json(code, obj)

    def control(self, method, path, query, body):
        st = self.server.state
        if method == "GET" and path == "/_requests":
            with st.lock:
                self.send_json(200, st.requests)
        elif method == "POST" and path == "/_reset":
            with st.lock:
                st.requests = []
                st.fails = []
                st.delays = []
                st.exec_protocols = ["v5.channel.k8s.io", "v4.channel.k8s.io"]
                st.controller_paused = False
            self.send_json(200, {"ok": True})
        elif method == "GET" and path == "/_exec_used":
            with st.lock:
                self.send_json(200, st.exec_used)
        elif method == "POST" and path == "/_exec_protocols":
            only = [p for p in query.get("only", []) if p in (
                "v5.channel.k8s.io", "v4.channel.k8s.io")]
            with st.lock:
                st.exec_protocols = only or ["v5.channel.k8s.io",
                                             "v4.channel.k8s.io"]
            self.send_json(200, {"exec_protocols": st.exec_protocols})
        elif method == "POST" and path == "/_delay":
            prefix = (query.get("path_prefix") or ["/"])[0]
            times = int((query.get("times") or ["1"])[0])
            secs = float((query.get("seconds") or ["1"])[0])
            meth = (query.get("method") or [None])[0]
            with st.lock:
                st.delays.append([prefix, meth, times, secs])
            self.send_json(200, {"ok": True})
        elif method == "POST" and path == "/_exec_drop":
            # Every open exec socket cut, no status and no close frame:
            # what an API server's restart or a proxy's timeout does.
            with st.lock:
                conns = list(st.exec_conns)
            for c in conns:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self.send_json(200, {"dropped": len(conns)})
        elif method == "POST" and path == "/_controller":
            with st.lock:
                st.controller_paused = (query.get("paused") or ["0"])[0] == "1"
            self.send_json(200, {"paused": st.controller_paused})
        elif method == "POST" and path == "/_fail":
            prefix = (query.get("path_prefix") or ["/"])[0]
            times = int((query.get("times") or ["1"])[0])
            meth = (query.get("method") or [None])[0]
            with st.lock:
                st.fails.append([prefix, meth, times])
            self.send_json(200, {"ok": True})
        else:
            self.send_json(404, ApiError(404, "no such control").status())

    # -- routing

    def route(self, method, path, query, body):
        parts = [urllib.parse.unquote(p) for p in path.strip("/").split("/")]
        if path == "/version" and method == "GET":
            return 200, {"major": "1", "minor": "36",
                         "gitVersion": "v1.36.0-fake",
                         "gitCommit": "0" * 40, "gitTreeState": "clean",
                         "buildDate": "2026-01-01T00:00:00Z",
                         "goVersion": "go1.25", "compiler": "gc",
                         "platform": "linux/amd64"}
        if parts[:1] == ["api"] and len(parts) >= 2:
            group, version, rest = "", parts[1], parts[2:]
        elif parts[:1] == ["apis"] and len(parts) >= 3:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise ApiError(404, "the server could not find the requested "
                           "resource")
        if group == "metrics.k8s.io" and version == "v1beta1":
            return self.pod_metrics(method, rest)
        ns = None
        if len(rest) >= 2 and rest[0] == "namespaces" and len(rest) != 2:
            ns, rest = rest[1], rest[2:]
        if not rest:
            raise ApiError(404, "the server could not find the requested "
                           "resource")
        plural = rest[0]
        name = rest[1] if len(rest) > 1 else None
        sub = "/".join(rest[2:]) if len(rest) > 2 else None
        res = RESOURCES.get((group, version, plural))
        if res is None:
            raise ApiError(404, "the server could not find the requested "
                           "resource")
        kind, defname, namespaced, writable = res
        if namespaced != (ns is not None):
            raise ApiError(404, "the server could not find the requested "
                           "resource")
        ctx = (group, version, plural, kind, defname, ns, name)
        st = self.server.state
        if sub is not None:
            return self.subresource(method, ctx, sub, query, body)
        with st.lock:
            if method == "GET":
                if name is None:
                    return 200, self.list(ctx, query)
                return 200, self.public(self.get(ctx))
            # Pods: made by the StatefulSet controller only here, but
            # deleted as on a real cluster (the controller makes a new
            # one while replicas is 1).
            if not writable and not (kind == "Pod" and method == "DELETE"):
                raise ApiError(405, "the server does not allow this method "
                               "on the requested resource")
            if method == "POST" and name is None:
                return 201, self.public(self.create(ctx, self.parse(body)))
            if method == "PUT" and name is not None:
                return 200, self.public(self.update(ctx, self.parse(body)))
            if method == "PATCH" and name is not None:
                return 200, self.public(self.patch(ctx, body))
            if method == "DELETE" and name is not None:
                return 200, self.public(self.delete(ctx, query, body))
        raise ApiError(405, "the server does not allow this method on the "
                       "requested resource")

    @staticmethod
    def public(obj):
        return {k: v for k, v in obj.items() if not k.startswith("_")}

    def parse(self, body):
        if self.headers.get("Content-Type", "").split(";")[0].strip() not in \
                ("application/json", ""):
            raise ApiError(415, "the body of the request was in an unknown "
                           "format - accepted media types include: "
                           "application/json, application/yaml, "
                           "application/vnd.kubernetes.protobuf")
        try:
            obj = json.loads(body)
        except ValueError as e:
            raise ApiError(400, "couldn't get version/kind; json parse "
                           "error: %s" % e)
        if not isinstance(obj, dict):
            raise ApiError(400, "couldn't get version/kind; json parse "
                           "error: not an object")
        return obj

    def validate(self, ctx, obj, defname=None):
        group, version, plural, kind, dname, ns, name = ctx
        defname = defname or dname
        want_kind = "Scale" if defname == SCALE_DEF else kind
        want_api = "autoscaling/v1" if defname == SCALE_DEF else (
            group + "/" + version if group else version)
        if obj.get("kind") not in (None, want_kind) or \
                obj.get("apiVersion") not in (None, want_api):
            raise ApiError(400, "the API version in the data (%s) does not "
                           "match the expected API version (%s)" %
                           (obj.get("apiVersion"), want_api))
        st = self.server.state
        oname = (obj.get("metadata") or {}).get("name") or name or ""
        causes = st.schemas.errors(defname, obj)
        if causes:
            raise invalid(want_kind, group, oname, causes)
        if defname == SCALE_DEF:
            return
        meta = obj.get("metadata") or {}
        if ns is not None and meta.get("namespace") not in (None, ns):
            raise ApiError(400, "the namespace of the provided object does "
                           "not match the namespace sent on the request")
        causes = []
        semantic(kind, obj, causes)
        if causes:
            raise invalid(kind, group, oname, causes)

    def key(self, ctx, name=None):
        return (ctx[2], ctx[5] or "", name or ctx[6])

    def get(self, ctx):
        obj = self.server.state.objs.get(self.key(ctx))
        if obj is None:
            raise not_found(ctx[2], ctx[6], ctx[0])
        return obj

    def list(self, ctx, query):
        st = self.server.state
        sel = (query.get("labelSelector") or [""])[0]
        keyed = [(k, o) for k, o in sorted(st.objs.items())
                 if k[0] == ctx[2] and (ctx[5] is None or k[1] == ctx[5])
                 and label_match(o["metadata"].get("labels"), sel)]
        meta = {"resourceVersion": str(st.rv)}
        # Chunked lists as the real apiserver serves them: limit, and an
        # opaque continue token naming the key the next chunk starts after.
        token = (query.get("continue") or [""])[0]
        if token:
            try:
                after = json.loads(base64.urlsafe_b64decode(
                    token.encode()).decode())["after"]
            except (ValueError, KeyError, TypeError):
                raise ApiError(400, "continue key is not valid")
            keyed = [(k, o) for k, o in keyed if list(k) > after]
        lim = (query.get("limit") or [""])[0]
        if lim:
            try:
                n = int(lim)
            except ValueError:
                raise ApiError(400, "limit: invalid value")
            if n > 0 and len(keyed) > n:
                meta["continue"] = base64.urlsafe_b64encode(json.dumps(
                    {"after": list(keyed[n - 1][0])}).encode()).decode()
                meta["remainingItemCount"] = len(keyed) - n
                keyed = keyed[:n]
        return {"kind": ctx[3] + "List",
                "apiVersion": ctx[0] + "/" + ctx[1] if ctx[0] else ctx[1],
                "metadata": meta, "items": [self.public(o) for _, o in keyed]}

    def check_namespace(self, ctx):
        ns = ctx[5]
        if ns is None:
            return
        nso = self.server.state.objs.get(("namespaces", "", ns))
        if nso is None:
            raise not_found("namespaces", ns)
        if nso["status"].get("phase") == "Terminating":
            raise ApiError(403, "%s \"%s\" is forbidden: unable to create "
                           "new content in namespace %s because it is being "
                           "terminated" % (ctx[2], "", ns), reason="Forbidden")

    def create(self, ctx, obj):
        st = self.server.state
        self.validate(ctx, obj)
        self.check_namespace(ctx)
        meta = obj["metadata"]
        key = self.key(ctx, meta["name"])
        if key in st.objs:
            raise ApiError(409, '%s "%s" already exists' %
                           (ctx[2] + ("." + ctx[0] if ctx[0] else ""),
                            meta["name"]),
                           details={"name": meta["name"], "group": ctx[0],
                                    "kind": ctx[2]})
        obj = copy.deepcopy(obj)
        obj["kind"] = ctx[3]
        obj["apiVersion"] = ctx[0] + "/" + ctx[1] if ctx[0] else ctx[1]
        obj["metadata"] = st.meta(meta, ctx[5])
        self.defaults(ctx[3], obj, None)
        st.objs[key] = obj
        return obj

    def defaults(self, kind, obj, old):
        """Server-populated fields and immutability checks."""
        st = self.server.state
        spec = obj.setdefault("spec", {}) if kind not in (
            "ConfigMap",) else None
        if kind == "Namespace":
            obj["metadata"].setdefault("labels", {})[
                "kubernetes.io/metadata.name"] = obj["metadata"]["name"]
            obj["spec"] = {"finalizers": ["kubernetes"]}
            obj["status"] = {"phase": "Active"}
        elif kind == "StatefulSet":
            spec.setdefault("replicas", 1)
            spec.setdefault("podManagementPolicy", "OrderedReady")
            spec.setdefault("updateStrategy", {"type": "RollingUpdate"})
            gen = old["metadata"].get("generation", 1) + 1 if old else 1
            obj["metadata"]["generation"] = gen
            obj.setdefault("status", {"replicas": 0})
        elif kind == "Service":
            if spec.get("clusterIP") is None:
                spec["clusterIP"] = "10.96.0.%d" % (st.rv % 250 + 2)
            spec.setdefault("type", "ClusterIP")
            obj["status"] = {"loadBalancer": {}}
        elif kind == "PersistentVolumeClaim":
            spec.setdefault("volumeMode", "Filesystem")
            spec.setdefault("storageClassName", "standard")
            obj["status"] = {"phase": "Bound",
                             "accessModes": spec.get("accessModes"),
                             "capacity": {"storage": spec["resources"][
                                 "requests"]["storage"]}}
        elif kind == "ResourceQuota":
            obj["status"] = {"hard": dict(spec.get("hard") or {}),
                             "used": {}}
        if old is None:
            return
        causes = []
        if kind == "StatefulSet":
            for k in set(old["spec"]) | set(spec):
                if k in ("replicas", "ordinals", "template", "updateStrategy",
                         "persistentVolumeClaimRetentionPolicy",
                         "minReadySeconds", "podManagementPolicy"):
                    continue
                if old["spec"].get(k) != spec.get(k):
                    causes.append(("spec", "Forbidden: updates to statefulset "
                                   "spec for fields other than 'replicas', "
                                   "'ordinals', 'template', 'updateStrategy',"
                                   " 'persistentVolumeClaimRetentionPolicy' "
                                   "and 'minReadySeconds' are forbidden"))
                    break
        elif kind == "PersistentVolumeClaim":
            a = {k: v for k, v in old["spec"].items() if k != "resources"}
            b = {k: v for k, v in spec.items() if k != "resources"}
            if a != b:
                causes.append(("spec", "Forbidden: spec is immutable after "
                               "creation except resources.requests"))
        elif kind == "Service":
            if old["spec"].get("clusterIP") != spec.get("clusterIP"):
                causes.append(("spec.clusterIP", "Invalid value: field is "
                               "immutable"))
        if causes:
            raise invalid(kind, "", obj["metadata"]["name"], causes)

    def update(self, ctx, obj):
        old = self.get(ctx)
        self.validate(ctx, obj)
        meta = obj["metadata"]
        if meta.get("name") != ctx[6]:
            raise ApiError(400, "the name of the object (%s) does not match "
                           "the name on the URL (%s)" % (meta.get("name"),
                                                         ctx[6]))
        return self.replace(ctx, old, obj)

    def replace(self, ctx, old, obj):
        st = self.server.state
        meta = obj["metadata"]
        rv = meta.get("resourceVersion")
        if rv and rv != old["metadata"]["resourceVersion"]:
            raise ApiError(409, 'Operation cannot be fulfilled on %s "%s": '
                           "the object has been modified; please apply your "
                           "changes to the latest version and try again" %
                           (ctx[2], ctx[6]), reason="Conflict")
        obj = copy.deepcopy(obj)
        obj["kind"] = ctx[3]
        obj["apiVersion"] = old["apiVersion"]
        m = dict(old["metadata"])
        for k in ("labels", "annotations"):
            if k in meta:
                m[k] = meta[k]
            else:
                m.pop(k, None)
        m["resourceVersion"] = st.next_rv()
        obj["metadata"] = m
        if "status" in old and ctx[3] != "StatefulSet":
            obj["status"] = old["status"]
        elif ctx[3] == "StatefulSet":
            obj["status"] = old.get("status", {})
        self.defaults(ctx[3], obj, old)
        st.objs[self.key(ctx)] = obj
        return obj

    def patch(self, ctx, body):
        old = self.get(ctx)
        patch = self.parse_patch(body)
        merged = merge_patch(self.public(old), patch)
        # Server-set fields come back from the stored object; only what
        # the client may write is validated.
        self.validate(ctx, merged)
        rv = (patch.get("metadata") or {}).get("resourceVersion")
        merged["metadata"]["resourceVersion"] = rv or \
            old["metadata"]["resourceVersion"]
        return self.replace(ctx, old, merged)

    def parse_patch(self, body):
        ctype = self.headers.get("Content-Type", "").split(";")[0].strip()
        if ctype not in ("application/merge-patch+json",
                         "application/strategic-merge-patch+json"):
            raise ApiError(415, "the body of the request was in an unknown "
                           "format - accepted media types include: "
                           "application/merge-patch+json, "
                           "application/strategic-merge-patch+json "
                           "(this fake does not do json-patch or apply)")
        try:
            patch = json.loads(body)
        except ValueError as e:
            raise ApiError(400, "error decoding patch: %s" % e)
        if not isinstance(patch, dict):
            raise ApiError(400, "error decoding patch: not an object")
        return patch

    def delete(self, ctx, query, body):
        st = self.server.state
        if body:
            opts = self.parse(body)
            causes = st.schemas.errors(DELETE_OPTIONS_DEF, opts)
            if causes:
                raise invalid("DeleteOptions", "", "", causes)
        obj = self.get(ctx)
        kind = ctx[3]
        if kind == "Namespace":
            if obj["status"].get("phase") != "Terminating":
                obj["status"]["phase"] = "Terminating"
                obj["metadata"]["deletionTimestamp"] = now_rfc3339()
                ns = ctx[6]
                for k in [k for k in st.objs if k[1] == ns]:
                    if k[0] == "pods":
                        st.delete_pod(ns, k[2])
                    else:
                        self.drop(k)
                threading.Timer(0.3, self._finish_ns, args=(ns,)).start()
            return obj
        if kind == "Pod":
            return st.delete_pod(ctx[5], ctx[6])
        self.drop(self.key(ctx))
        return obj

    def drop(self, key):
        st = self.server.state
        obj = st.objs.pop(key, None)
        if key[0] == "statefulsets" and obj is not None:
            # Background propagation: the garbage collector takes the pod.
            for k, o in list(st.objs.items()):
                if k[0] == "pods" and k[1] == key[1] and any(
                        r.get("uid") == obj["metadata"]["uid"] for r in
                        o["metadata"].get("ownerReferences") or []):
                    st.delete_pod(k[1], k[2])
        if key[0] == "persistentvolumeclaims":
            shutil.rmtree(os.path.join(st.pvc_root, key[1], key[2]),
                          ignore_errors=True)

    def _finish_ns(self, ns):
        st = self.server.state
        while True:
            with st.lock:
                if not any(k[0] == "pods" and k[1] == ns for k in st.objs):
                    st.objs.pop(("namespaces", "", ns), None)
                    return
            time.sleep(0.05)

    # -- subresources: scale, log, exec

    def subresource(self, method, ctx, sub, query, body):
        st = self.server.state
        kind = ctx[3]
        if kind == "StatefulSet" and sub == "scale":
            with st.lock:
                sts = self.get(ctx)
                if method == "GET":
                    return 200, self.scale_of(sts)
                if method == "PUT":
                    scale = self.parse(body)
                elif method == "PATCH":
                    scale = merge_patch(self.scale_of(sts),
                                        self.parse_patch(body))
                else:
                    raise ApiError(405, "the server does not allow this "
                                   "method on the requested resource")
                self.validate(ctx, scale, SCALE_DEF)
                rep = (scale.get("spec") or {}).get("replicas", 0)
                if not isinstance(rep, int) or rep < 0:
                    raise invalid("Scale", "autoscaling", ctx[6],
                                  [("spec.replicas", "Invalid value: must be "
                                    "greater than or equal to 0")])
                if sts["spec"].get("replicas") != rep:
                    sts["spec"]["replicas"] = rep
                    sts["metadata"]["resourceVersion"] = st.next_rv()
                    sts["metadata"]["generation"] = \
                        sts["metadata"].get("generation", 1) + 1
                return 200, self.scale_of(sts)
        if kind == "Pod" and sub == "log" and method == "GET":
            return self.pod_log(ctx, query)
        if kind == "Pod" and sub == "exec" and method in ("GET", "POST"):
            return self.pod_exec(ctx, query)
        raise ApiError(404, "the server could not find the requested "
                       "resource")

    @staticmethod
    def scale_of(sts):
        m = sts["metadata"]
        return {"kind": "Scale", "apiVersion": "autoscaling/v1",
                "metadata": {"name": m["name"], "namespace": m["namespace"],
                             "uid": m["uid"],
                             "resourceVersion": m["resourceVersion"],
                             "creationTimestamp": m["creationTimestamp"]},
                "spec": {"replicas": sts["spec"].get("replicas", 1)},
                "status": {"replicas": (sts.get("status") or {}).get(
                    "replicas", 0),
                    "selector": ",".join("%s=%s" % kv for kv in sorted(
                        sts["spec"]["selector"]["matchLabels"].items()))}}

    def host_of(self, ctx, query):
        st = self.server.state
        with st.lock:
            pod = self.get(ctx)
            cname = (query.get("container") or [None])[0]
            names = [c["name"] for c in pod["spec"]["containers"]]
            if cname is not None and cname not in names:
                raise ApiError(400, "container %s is not valid for pod %s" %
                               (cname, ctx[6]))
            host = st.pods.get((ctx[5], ctx[6]))
            if host is None or not host.started:
                raise ApiError(400, 'container "%s" in pod "%s" is waiting '
                               "to start: ContainerCreating" %
                               (cname or names[0], ctx[6]))
            return pod, host

    def pod_log(self, ctx, query):
        pod, host = self.host_of(ctx, query)
        follow = (query.get("follow") or ["false"])[0] == "true"
        limit = None
        if query.get("limitBytes"):
            try:
                limit = int(query["limitBytes"][0])
            except ValueError:
                raise ApiError(400, "limitBytes: invalid")
            if limit < 1:
                raise invalid("PodLogOptions", "", "",
                              [("limitBytes", "Invalid value: must be "
                                "greater than 0")])
        if not follow:
            with open(host.log, "rb") as f:
                data = f.read() if limit is None else f.read(limit)
            return 200, data
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        sent = 0
        try:
            with open(host.log, "rb") as f:
                while True:
                    chunk = f.read(65536)
                    if limit is not None:
                        chunk = chunk[:max(0, limit - sent)]
                    if chunk:
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                        self.wfile.flush()
                        sent += len(chunk)
                        continue
                    if host.done or (limit is not None and sent >= limit):
                        break
                    time.sleep(0.05)
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            self.close_connection = True
        raise _Streamed()

    def pod_metrics(self, method, rest):
        st = self.server.state
        if method != "GET" or len(rest) != 4 or rest[0] != "namespaces" or \
                rest[2] != "pods":
            raise ApiError(404, "the server could not find the requested "
                           "resource")
        ns, name = rest[1], rest[3]
        with st.lock:
            pod = st.objs.get(("pods", ns, name))
            if pod is None or pod["status"].get("phase") != "Running":
                raise not_found("pods", name, "metrics.k8s.io")
            return 200, {
                "kind": "PodMetrics", "apiVersion": "metrics.k8s.io/v1beta1",
                "metadata": {"name": name, "namespace": ns,
                             "creationTimestamp": now_rfc3339(),
                             "labels": pod["metadata"].get("labels", {})},
                "timestamp": now_rfc3339(), "window": "15s",
                "containers": [{"name": c["name"],
                                "usage": {"cpu": st.args.metrics_cpu,
                                          "memory": st.args.metrics_memory}}
                               for c in pod["spec"]["containers"]]}

    def pod_exec(self, ctx, query):
        pod, host = self.host_of(ctx, query)
        if host.done:
            raise ApiError(400, "container is not running")
        cmd = query.get("command") or []
        if not cmd:
            raise ApiError(400, "you must specify at least 1 command")
        if self.headers.get("Upgrade", "").lower() != "websocket":
            raise ApiError(400, "Upgrade request required")
        offered = [p.strip() for p in self.headers.get(
            "Sec-WebSocket-Protocol", "").split(",") if p.strip()]
        with self.server.state.lock:
            speaks = list(self.server.state.exec_protocols)
        proto = next((p for p in speaks if p in offered), None)
        key = self.headers.get("Sec-WebSocket-Key")
        if proto is None or not key:
            raise ApiError(400, "unable to upgrade connection: no supported "
                           "subprotocol (%s)" % ", ".join(speaks))
        tty = (query.get("tty") or ["false"])[0] == "true"
        argv = [self.server.state.translate(host, a) for a in cmd]
        with self.server.state.lock:
            self.server.state.exec_used.append(proto)
        accept = base64.b64encode(hashlib.sha1(
            (key + WS_GUID).encode()).digest()).decode()
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.send_header("Sec-WebSocket-Protocol", proto)
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        with self.server.state.lock:
            self.server.state.exec_conns.add(self.connection)
        try:
            Exec(self, host, argv, tty, proto).run()
        finally:
            with self.server.state.lock:
                self.server.state.exec_conns.discard(self.connection)
        raise _Streamed()


class _Streamed(Exception):
    """The handler answered by itself (stream or upgrade)."""


class Exec:
    """One exec session: channel-framed WebSocket <-> a local process."""

    def __init__(self, handler, host, argv, tty, proto):
        self.h = handler
        self.host = host
        self.argv = argv
        self.tty = tty
        self.v5 = proto.startswith("v5")
        self.wlock = threading.Lock()

    def send(self, opcode, payload):
        n = len(payload)
        hdr = bytes([0x80 | opcode])
        if n < 126:
            hdr += bytes([n])
        elif n < 65536:
            hdr += bytes([126]) + struct.pack(">H", n)
        else:
            hdr += bytes([127]) + struct.pack(">Q", n)
        with self.wlock:
            self.h.wfile.write(hdr + payload)
            self.h.wfile.flush()

    def recv(self):
        """(opcode, payload) of one whole message, or None at EOF."""
        buf = b""
        first = None
        while True:
            h = self.h.rfile.read(2)
            if len(h) < 2:
                return None
            fin, op = h[0] & 0x80, h[0] & 0x0F
            if not h[1] & 0x80:
                raise ValueError("unmasked client frame")
            n = h[1] & 0x7F
            if n == 126:
                n = struct.unpack(">H", self.h.rfile.read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self.h.rfile.read(8))[0]
            if n > 1 << 20:
                raise ValueError("frame too large")
            mask = self.h.rfile.read(4)
            data = bytearray(self.h.rfile.read(n))
            if len(data) < n or len(mask) < 4:
                return None
            for i in range(n):
                data[i] ^= mask[i % 4]
            if op >= 8:
                if op == 9:
                    self.send(10, bytes(data))
                    continue
                if op == 10:
                    continue
                return op, bytes(data)
            if first is None:
                first = op
            buf += bytes(data)
            if fin:
                return first, buf

    def run(self):
        env = dict(self.host.env)
        cwd = env.get("HOME", self.host.root)
        master = None
        try:
            if self.tty:
                master, slave = pty.openpty()
                proc = subprocess.Popen(
                    self.argv, stdin=slave, stdout=slave, stderr=slave,
                    cwd=cwd, env=env, start_new_session=True,
                    preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
                os.close(slave)
                out_fds = {master: 1}
                stdin_fd = master
            else:
                proc = subprocess.Popen(
                    self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE, cwd=cwd, env=env,
                    start_new_session=True)
                out_fds = {proc.stdout.fileno(): 1, proc.stderr.fileno(): 2}
                stdin_fd = proc.stdin.fileno()
        except OSError as e:
            self.status({"status": "Failure", "reason": "InternalError",
                         "message": str(e)})
            return
        reader = threading.Thread(target=self.pump_in,
                                  args=(proc, stdin_fd, master), daemon=True)
        reader.start()
        fds = dict(out_fds)
        try:
            while fds:
                r, _, _ = select.select(list(fds), [], [], 0.2)
                for fd in r:
                    try:
                        data = os.read(fd, 16384)
                    except OSError:
                        data = b""
                    if not data:
                        del fds[fd]
                        continue
                    self.send(2, bytes([fds[fd]]) + data)
            rc = proc.wait()
            if rc == 0:
                self.status({"status": "Success"})
            else:
                self.status({"status": "Failure", "reason":
                             "NonZeroExitCode", "message": "command "
                             "terminated with non-zero exit code: exit "
                             "status %d" % rc, "details": {"causes": [
                                 {"reason": "ExitCode", "message": str(rc)}]}})
            self.send(8, struct.pack(">H", 1000))
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            pass
        finally:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGHUP)
                except ProcessLookupError:
                    pass
                proc.wait()
            if master is not None:
                os.close(master)

    def status(self, st):
        st = dict(st)
        st.setdefault("metadata", {})
        try:
            self.send(2, b"\x03" + json.dumps(st).encode())
        except OSError:
            pass

    def pump_in(self, proc, stdin_fd, master):
        try:
            while True:
                msg = self.recv()
                if msg is None:
                    break
                op, data = msg
                if op == 8:
                    break
                if not data:
                    continue
                ch, payload = data[0], data[1:]
                if ch == 0:
                    os.write(stdin_fd, payload)
                elif ch == 4 and master is not None:
                    size = json.loads(payload)
                    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack(
                        "HHHH", int(size["Height"]), int(size["Width"]),
                        0, 0))
                elif ch == 255 and self.v5 and payload[:1] == b"\x00":
                    if master is None and proc.stdin:
                        proc.stdin.close()
        except (OSError, ValueError, KeyError, ssl.SSLError):
            pass
        # Client gone: the exec'd process gets a hangup, as with kubectl.
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGHUP)
            except ProcessLookupError:
                pass


# ---------------------------------------------------------------- start up

class Server(ThreadingHTTPServer):
    """TLS handshakes happen in the connection's thread, not in accept."""

    tls = None

    def finish_request(self, request, client_address):
        if self.tls is not None:
            request.settimeout(10)
            try:
                request = self.tls.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError):
                request.close()
                return
            request.settimeout(None)
        super().finish_request(request, client_address)


def make_certs(d):
    """CA, server (127.0.0.1/localhost) and client certificates in d."""
    def run(*argv):
        subprocess.run(["openssl"] + list(argv), check=True, cwd=d,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
          "-nodes"]
    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt",
        "-days", "2", "-subj", "/CN=fake-kube-ca",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    for who, ext in (("server", "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                      "extendedKeyUsage=serverAuth\n"),
                     ("client", "extendedKeyUsage=clientAuth\n")):
        with open(os.path.join(d, who + ".ext"), "w") as f:
            f.write(ext)
        run("req", *ec, "-keyout", who + ".key", "-out", who + ".csr",
            "-subj", "/CN=fake-kube-" + who + ("/O=system:masters"
                                               if who == "client" else ""))
        run("x509", "-req", "-in", who + ".csr", "-CA", "ca.crt",
            "-CAkey", "ca.key", "-CAcreateserial", "-out", who + ".crt",
            "-days", "2", "-extfile", who + ".ext")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--bind", default="127.0.0.1")
    ap.add_argument("--http", action="store_true")
    ap.add_argument("--token", default="fake-token")
    ap.add_argument("--certs-dir")
    ap.add_argument("--require-field-manager", action="store_true")
    ap.add_argument("--nodes", type=int, default=2)
    ap.add_argument("--start-delay", type=float, default=0.5)
    ap.add_argument("--max-grace", type=float, default=3.0)
    ap.add_argument("--spec", default=DEFAULT_SPEC)
    ap.add_argument("--state-dir")
    ap.add_argument("--metrics-cpu", default="12m")
    ap.add_argument("--metrics-memory", default="34Mi")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()

    # Until the server runs, a SIGTERM still removes what was made.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    own_state = args.state_dir is None
    if own_state:
        args.state_dir = tempfile.mkdtemp(prefix="fake-kube-")
    try:
        serve(args)
    finally:
        if own_state:
            shutil.rmtree(args.state_dir, ignore_errors=True)


def serve(args):
    state = State(args, Schemas(args.spec))
    srv = Server((args.bind, args.port), Handler)
    srv.daemon_threads = True
    srv.state = state
    if not args.http:
        d = args.certs_dir or os.path.join(args.state_dir, "certs")
        os.makedirs(d, exist_ok=True)
        make_certs(d)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(os.path.join(d, "server.crt"),
                            os.path.join(d, "server.key"))
        ctx.load_verify_locations(os.path.join(d, "ca.crt"))
        ctx.verify_mode = ssl.CERT_OPTIONAL
        srv.tls = ctx

    stop = threading.Event()

    def controller():
        while not stop.is_set():
            state.tick()
            stop.wait(0.05)

    threading.Thread(target=controller, daemon=True).start()

    def bye(*_):
        stop.set()
        threading.Thread(target=srv.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, bye)
    signal.signal(signal.SIGINT, bye)
    print("READY %d" % srv.server_address[1], flush=True)
    try:
        srv.serve_forever(poll_interval=0.1)
    finally:
        state.shutdown()


if __name__ == "__main__":
    main()
