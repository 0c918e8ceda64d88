#!/usr/bin/env python3
"""An independent verifier of a firebreak ledger export, written from
docs/ledger-format.md alone; it trusts nothing the firebreak binary computed.

    firebreak audit export > ledger.jsonl
    python3 tools/verify_ledger.py ledger.jsonl [--trusted-checkpoint cp.json]

It recomputes every payload's canonical form (RFC 8785), every leaf hash and the
`prev` chain; replays each campaign's governance (request hashes, who may decide
and when, Ed25519 decision signatures, quorums, expiry, superseding, every spec
change against the request kind its edits need, tripwire halts: the section
"Governance rules an independent verifier applies" of docs/ledger-format.md);
then checks the RFC 6962 root at each checkpoint, each checkpoint's Ed25519
signature, an inclusion proof for every entry and a consistency proof between
successive checkpoints (generating and verifying the proofs itself).

Exit 0 when everything holds. Exit 1 on the first problem, printed as one line
`REJECTED seq N: CHECK: REASON` (`seq -` when no single entry is to blame, as
when a checkpoint's root disagrees). Exit 2 when the verifier itself fails
(`ERROR: verifier failed: ...` and a traceback): that is a bug here, not evidence
of tampering. Needs Python 3 and the `cryptography` package.
"""
import argparse
import base64
import binascii
import calendar
import copy
import datetime
import hashlib
import json
import math
import re
import sys
import traceback
from fractions import Fraction

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

DOMAIN = b"firebreak checkpoint v1\n"
REQUEST_DOMAIN = b"firebreak request v1\n"
DECISION_DOMAIN = b"firebreak decision v1\n"

ENTRY_MEMBERS = {"v", "seq", "prev", "campaign", "at", "kind", "data"}
KINDS = {
    "campaign_created", "run_started", "run_ended", "trial_proposed", "trial_started",
    "trial_reported", "trial_finished", "trial_requeued", "trial_resumed", "request_filed",
    "request_decided", "request_closed", "spec_changed", "trial_reevaluated", "trial_tested",
    "denied", "agent_answered", "generation_started", "generation_gated", "generation_closed",
    "optuna",
}
REQUEST_MEMBERS = {"v", "id", "campaign", "kind", "diff", "base_spec_hash", "requested_by",
                   "reason", "created_at", "expires_at"}
# Members a request body may carry besides REQUEST_MEMBERS.
REQUEST_OPTIONAL = {"evidence"}
REQUEST_KINDS = {"constraints", "space", "policy", "approvers", "evaluation", "budget", "tripwire",
                 "promotion"}
CLOSED_STATES = {"approved", "rejected", "expired", "superseded"}
DECIDING_ROLES = {"approver", "admin"}


class Rejected(Exception):
    """The export is wrong: `seq` (None when no single entry is to blame), a
    short stable name of the check that failed, and why."""

    def __init__(self, seq, check, reason):
        super().__init__(reason)
        self.seq, self.check, self.reason = seq, check, reason

    def line(self):
        return "REJECTED seq %s: %s: %s" % ("-" if self.seq is None else self.seq, self.check,
                                           self.reason)


class NotCanonical(Exception):
    """A value RFC 8785 cannot serialize."""


# --- Typed access: a missing or ill-typed member is a rejection ---------------

TYPES = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "boolean": lambda v: isinstance(v, bool),
}


def need(obj, name, kind, seq, where):
    """`obj[name]`, which must exist and be of `kind`; `where` names `obj`."""
    if not isinstance(obj, dict) or name not in obj:
        raise Rejected(seq, "format", "%s.%s is missing" % (where, name))
    value = obj[name]
    if not TYPES[kind](value):
        raise Rejected(seq, "format", "%s.%s is not a%s %s" % (
            where, name, "n" if kind[0] in "aeiou" else "", kind))
    return value


def optional(obj, name, kind, seq, where):
    """`obj[name]` when present and not null, else None."""
    if not isinstance(obj, dict) or obj.get(name) is None:
        return None
    return need(obj, name, kind, seq, where)


def instant(text, seq, where):
    """An RFC 3339 time as exact seconds since the epoch."""
    match = re.fullmatch(
        r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))",
        text)
    if match is None:
        raise Rejected(seq, "format", "%s %r is not an RFC 3339 time" % (where, text))
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    try:
        datetime.datetime(year, month, day, hour, minute, second)
    except ValueError:
        raise Rejected(seq, "format", "%s %r is not a valid time" % (where, text))
    seconds = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    if match.group(9):
        offset = int(match.group(10)) * 3600 + int(match.group(11)) * 60
        seconds -= offset if match.group(9) == "+" else -offset
    fraction = match.group(7) or "0"
    return seconds + Fraction(int(fraction), 10 ** len(fraction))


# --- RFC 8785 -------------------------------------------------------------

def es_number(x):
    """ECMAScript Number::toString of a float, as RFC 8785 requires."""
    if isinstance(x, bool):
        raise NotCanonical("booleans are not numbers")
    if isinstance(x, int):
        return str(x)
    if math.isnan(x) or math.isinf(x):
        raise NotCanonical("non-finite number")
    if x == 0:
        return "0"
    if x < 0:
        return "-" + es_number(-x)
    r = repr(x)
    mantissa, _, exp = r.partition("e")
    whole, _, frac = mantissa.partition(".")
    digits = whole + frac
    point = len(whole) + (int(exp) if exp else 0)
    while digits.startswith("0"):
        digits, point = digits[1:], point - 1
    digits = digits.rstrip("0")
    k, n = len(digits), point
    if k <= n <= 21:
        return digits + "0" * (n - k)
    if 0 < n <= 21:
        return digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return "0." + "0" * (-n) + digits
    e = n - 1
    sign = "+" if e > 0 else "-"
    head = digits[0] + ("." + digits[1:] if k > 1 else "")
    return head + "e" + sign + str(abs(e))


def canonical(value):
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, (int, float)):
        return es_number(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ",".join(canonical(v) for v in value) + "]"
    if isinstance(value, dict):
        keys = sorted(value, key=lambda k: k.encode("utf-16-be"))
        return "{" + ",".join(json.dumps(k, ensure_ascii=False) + ":" + canonical(value[k]) for k in keys) + "}"
    raise NotCanonical("not JSON: %r" % (value,))


# --- RFC 6962 -------------------------------------------------------------

def sha256(data):
    return hashlib.sha256(data).digest()


def leaf_hash(data):
    return sha256(b"\x00" + data)


def node_hash(left, right):
    return sha256(b"\x01" + left + right)


def split(n):
    k = 1
    while k << 1 < n:
        k <<= 1
    return k


def root(leaves):
    if not leaves:
        return sha256(b"")
    if len(leaves) == 1:
        return leaves[0]
    k = split(len(leaves))
    return node_hash(root(leaves[:k]), root(leaves[k:]))


def inclusion_path(leaves, index):
    if len(leaves) <= 1:
        return []
    k = split(len(leaves))
    if index < k:
        return inclusion_path(leaves[:k], index) + [root(leaves[k:])]
    return inclusion_path(leaves[k:], index - k) + [root(leaves[:k])]


def verify_inclusion(leaf, index, size, path, expected):
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == expected


def consistency_path(leaves, m):
    def sub(m, leaves, complete):
        n = len(leaves)
        if m == n:
            return [] if complete else [root(leaves)]
        k = split(n)
        if m <= k:
            return sub(m, leaves[:k], complete) + [root(leaves[k:])]
        return sub(m - k, leaves[k:], False) + [root(leaves[:k])]
    if m == 0 or m >= len(leaves):
        return []
    return sub(m, leaves, True)


def verify_consistency(m, n, old, new, path):
    if m > n:
        return False
    if m == n:
        return not path and old == new
    if m == 0:
        return not path
    path = list(path)
    if m & (m - 1) == 0:
        path.insert(0, old)
    if not path:
        return False
    fn, sn = m - 1, n - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and fr == old and sr == new


# --- RFC 6902, the subset requests use (add, remove, replace) -------------------

class PatchError(Exception):
    """A patch that does not apply."""


def pointer_tokens(path):
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError("%r is not a JSON pointer" % path)
    return [t.replace("~1", "/").replace("~0", "~") for t in path[1:].split("/")]


def array_index(token, items, path, appending):
    if appending and token == "-":
        return len(items)
    if not re.fullmatch(r"0|[1-9][0-9]*", token):
        raise PatchError("%s: %r is not an array index" % (path, token))
    return int(token)


def child(node, token, path):
    if isinstance(node, dict) and token in node:
        return node[token]
    if isinstance(node, list):
        index = array_index(token, node, path, False)
        if index < len(node):
            return node[index]
    raise PatchError("%s: the parent does not exist" % path)


def apply_patch(document, patch):
    """A copy of `document` with the RFC 6902 `patch` applied."""
    if not isinstance(patch, list):
        raise PatchError("a patch is an array of operations")
    out = copy.deepcopy(document)
    for op in patch:
        if not isinstance(op, dict) or not isinstance(op.get("op"), str) \
                or not isinstance(op.get("path"), str):
            raise PatchError("an operation needs `op` and `path` strings")
        name, path = op["op"], op["path"]
        if name not in ("add", "remove", "replace"):
            raise PatchError("%s: unsupported operation %r" % (path, name))
        if name != "remove" and "value" not in op:
            raise PatchError("%s: %s needs a value" % (path, name))
        value = copy.deepcopy(op.get("value"))
        tokens = pointer_tokens(path)
        if not tokens:
            if name == "remove":
                raise PatchError("the whole document cannot be removed")
            out = value
            continue
        parent = out
        for token in tokens[:-1]:
            parent = child(parent, token, path)
        last = tokens[-1]
        if isinstance(parent, dict):
            if name == "add":
                parent[last] = value
            elif last not in parent:
                raise PatchError("%s: nothing to %s" % (path, name))
            elif name == "replace":
                parent[last] = value
            else:
                del parent[last]
        elif isinstance(parent, list):
            index = array_index(last, parent, path, name == "add")
            if name == "add":
                if index > len(parent):
                    raise PatchError("%s: index out of range" % path)
                parent.insert(index, value)
            elif index >= len(parent):
                raise PatchError("%s: index out of range" % path)
            elif name == "replace":
                parent[index] = value
            else:
                del parent[index]
        else:
            raise PatchError("%s: the parent is not an object or an array" % path)
    return out


# --- Governance ----------------------------------------------------------------

def edit_class(path):
    """What an edit at this JSON pointer of a spec needs: a request kind,
    `free` (takes effect at once) or `ignored` (never changes the spec in
    effect). By section (first segment) and key (second, "" when none)."""
    rest = path[1:] if path.startswith("/") else path
    parts = rest.split("/", 2)
    section, key = parts[0], parts[1] if len(parts) > 1 else ""
    if (section, key) == ("campaign", "description"):
        return "ignored"
    if section in ("", "objective", "task") or (section == "campaign" and key in ("", "name")):
        return "evaluation"
    if section == "constraints" or (section == "search" and key in ("", "n_trials")):
        return "budget"
    if section == "space" or (section, key) == ("generations", "next_space"):
        return "space"
    if section == "generations":
        return "budget" if key in ("count", "budget") else "evaluation"
    if section == "governance":
        if key in ("approvers", "quorum", "request_ttl"):
            return "approvers"
        if key in ("policy", "policy_text"):
            return "policy"
        return "evaluation"
    return "free"


def is_machine(principal):
    return principal.startswith(("agent:", "worker:", "tripwire:", "generation:"))


def sha256_hex(text):
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def ed25519_key(text):
    """The public key of `ed25519:BASE64`, or None when it is not one."""
    if not text.startswith("ed25519:"):
        return None
    try:
        return Ed25519PublicKey.from_public_bytes(
            base64.b64decode(text[len("ed25519:"):], validate=True))
    except (binascii.Error, ValueError):
        return None


def signature_verifies(key_text, signature_text, message):
    key = ed25519_key(key_text)
    if key is None:
        return False
    try:
        key.verify(base64.b64decode(signature_text, validate=True), message)
    except (binascii.Error, ValueError, InvalidSignature):
        return False
    return True


class Campaign:
    def __init__(self, spec):
        self.spec = spec
        self.halted = None  # (seq, request id) of the tripwire request that halted it
        self.gated = {}  # generation -> whether its gates passed
        self.study = None  # an Optuna study's: {"opened_at", "trials": [{"id", "finished"}]}
        self.deleted = False


class Request:
    def __init__(self, body, digest, seq):
        self.body, self.hash, self.filed = body, digest, seq
        self.id, self.campaign, self.kind = body["id"], body["campaign"], body["kind"]
        self.requested_by = body["requested_by"]
        self.state = "pending"
        self.closed = None
        self.carried_out = None
        self.decisions = []  # (verdict, by, key)


class Governance:
    """Replays every campaign's governance in seq order
    (docs/ledger-format.md, "Governance rules an independent verifier applies")."""

    def __init__(self):
        self.campaigns = {}
        self.requests = {}
        self.runs = {}  # (campaign, run id) -> seq of its latest run_started
        # Optuna studies: ids are global, in ledger order.
        self.next_study = 0
        self.next_trial = 0
        self.optuna_trials = {}  # trial id -> (campaign name, its record in the study)
        self.study_names = {}  # open study name -> campaign name

    # The spec in effect --------------------------------------------------------

    def governance_of(self, spec, seq):
        governance = spec.get("governance")
        if governance is None:
            return {}
        if not isinstance(governance, dict):
            raise Rejected(seq, "format", "the spec in effect's governance is not an object")
        return governance

    def approvers(self, spec, seq):
        """(name, key, os_user) of every approver or admin of the spec."""
        listed = self.governance_of(spec, seq).get("approvers")
        if listed is None:
            return []
        if not isinstance(listed, list):
            raise Rejected(seq, "format", "the spec in effect's governance.approvers is not an array")
        out = []
        for i, entry in enumerate(listed):
            where = "the spec in effect's governance.approvers[%d]" % i
            name = need(entry, "name", "string", seq, where)
            key = need(entry, "key", "string", seq, where)
            role = optional(entry, "role", "string", seq, where) or "approver"
            os_user = optional(entry, "os_user", "string", seq, where)
            if role in DECIDING_ROLES:
                out.append((name, key, os_user))
        return out

    def quorum(self, spec, seq):
        quorum = self.governance_of(spec, seq).get("quorum")
        if quorum is None:
            return 1
        if not TYPES["integer"](quorum):
            raise Rejected(seq, "format", "the spec in effect's governance.quorum is not an integer")
        return max(quorum, 1)

    # Entries -------------------------------------------------------------------

    def entry(self, seq, body):
        kind, name = body["kind"], body["campaign"]
        data = need(body, "data", "object", seq, "entry")
        at = instant(body["at"], seq, "at")
        if kind == "campaign_created":
            return self.campaign_created(seq, name, data)
        campaign = self.campaigns.get(name)
        if campaign is None:
            raise Rejected(seq, "campaign", "campaign %r was never created" % name)
        if campaign.spec.get("kind") == "optuna" and kind not in ("optuna", "denied"):
            raise Rejected(seq, "optuna", "campaign %r is an Optuna study, which records no %r entry"
                           % (name, kind))
        handler = getattr(self, kind, None)
        if handler is not None:
            handler(seq, at, campaign, name, data)

    def optuna(self, seq, at, campaign, name, data):
        """An Optuna study's operation (docs/optuna.md): ids and numbers in order,
        nothing after a trial finished, its budget and governed space."""
        spec = campaign.spec
        if spec.get("kind") != "optuna":
            raise Rejected(seq, "optuna", "campaign %r is not an Optuna study" % name)
        op = need(data, "op", "object", seq, "data")
        what = need(op, "op", "string", seq, "data.op")

        def recent(where):
            made = Fraction(need(op, "at", "integer", seq, "data.op"), 1000)
            if made > at or at - made > 60:
                raise Rejected(seq, "optuna", "%s: the operation's time is not within a minute "
                               "before its entry's" % where)
            return made

        if what == "study_opened":
            made = recent("study_opened")
            if campaign.study is not None or campaign.deleted:
                raise Rejected(seq, "optuna", "campaign %r opens a second study" % name)
            study_name = spec.get("study")
            if study_name in self.study_names:
                raise Rejected(seq, "optuna", "a study called %r is open already" % study_name)
            if op.get("study_id") != self.next_study:
                raise Rejected(seq, "optuna", "study id %r is not the next one (%d)" % (
                    op.get("study_id"), self.next_study))
            self.next_study += 1
            self.study_names[study_name] = name
            campaign.study = {"opened_at": made, "trials": []}
            return
        study = campaign.study
        if study is None:
            raise Rejected(seq, "optuna", "campaign %r has no open study" % name)
        limits = spec.get("constraints") or {}
        space = spec.get("space") or {}

        def governed(param_name, param):
            bound = space.get(param_name)
            if bound is None:
                return
            value = param["value"]
            if "choices" in bound:
                distribution = json.loads(param["distribution"].replace("NaN", "null")
                                          .replace("-Infinity", "null").replace("Infinity", "null"))
                choices = distribution.get("attributes", {}).get("choices", [])
                ok = (isinstance(value, (int, float)) and value == int(value)
                      and 0 <= value < len(choices) and choices[int(value)] in bound["choices"])
            else:
                ok = isinstance(value, (int, float)) and bound["low"] <= value <= bound["high"]
            if not ok:
                raise Rejected(seq, "optuna", "parameter %s = %r is outside the governed space "
                               "(space.%s)" % (param_name, value, param_name))

        if what == "study_deleted":
            campaign.study, campaign.deleted = None, True
            self.study_names.pop(spec.get("study"), None)
        elif what == "study_attr":
            pass
        elif what == "trial_created":
            made = recent("trial_created")
            trial = need(op, "trial", "object", seq, "data.op")
            if trial.get("trial_id") != self.next_trial:
                raise Rejected(seq, "optuna", "trial id %r is not the next one (%d)" % (
                    trial.get("trial_id"), self.next_trial))
            if trial.get("number") != len(study["trials"]):
                raise Rejected(seq, "optuna", "trial number %r is not the study's next (%d)" % (
                    trial.get("number"), len(study["trials"])))
            if "max_trials" in limits and len(study["trials"]) >= limits["max_trials"]:
                raise Rejected(seq, "optuna", "a trial past the budget constraints.max_trials = %s"
                               % limits["max_trials"])
            if ("max_wall_seconds" in limits
                    and made - study["opened_at"] > Fraction(limits["max_wall_seconds"])):
                raise Rejected(seq, "optuna", "a trial past constraints.max_wall_seconds")
            for param_name, param in (trial.get("params") or {}).items():
                governed(param_name, param)
            record = {"id": trial["trial_id"],
                      "finished": trial.get("state") in ("complete", "pruned", "fail")}
            self.next_trial += 1
            study["trials"].append(record)
            self.optuna_trials[record["id"]] = (name, record)
        elif what in ("trial_param", "trial_state", "trial_intermediate", "trial_attr"):
            owner, record = self.optuna_trials.get(op.get("trial_id"), (None, None))
            if owner != name or record not in study["trials"]:
                raise Rejected(seq, "optuna", "trial %r is not a trial of this study" % op.get("trial_id"))
            if record["finished"]:
                raise Rejected(seq, "optuna", "trial %r changed after it finished" % op.get("trial_id"))
            if what == "trial_param":
                governed(need(op, "name", "string", seq, "data.op"),
                         need(op, "param", "object", seq, "data.op"))
            if what == "trial_state" and op.get("state") in ("complete", "pruned", "fail"):
                record["finished"] = True
        else:
            raise Rejected(seq, "optuna", "unknown Optuna operation %r" % what)

    def campaign_created(self, seq, name, data):
        spec = need(data, "spec", "object", seq, "data")
        spec_hash = need(data, "spec_hash", "string", seq, "data")
        if name in self.campaigns:
            raise Rejected(seq, "campaign", "campaign %r created twice" % name)
        if sha256_hex(canonical(spec)) != spec_hash:
            raise Rejected(seq, "campaign", "spec_hash is not the hash of the spec")
        self.campaigns[name] = Campaign(spec)

    def run_started(self, seq, at, campaign, name, data):
        self.runs[(name, need(data, "run", "integer", seq, "data"))] = seq

    def trial_started(self, seq, at, campaign, name, data):
        run = need(data, "run", "integer", seq, "data")
        if campaign.halted is None:
            return
        started = self.runs.get((name, run))
        if started is None:
            raise Rejected(seq, "halt", "trial %s of %r was started by run %d, which never started, "
                           "while tripwire request %s halted the campaign (seq %d)" % (
                               data.get("number"), name, run, campaign.halted[1],
                               campaign.halted[0]))
        if started > campaign.halted[0]:
            raise Rejected(seq, "halt", "trial %s of %r was started by run %d, which began at seq %d, "
                           "after tripwire request %s halted the campaign at seq %d" % (
                               data.get("number"), name, run, started, campaign.halted[1],
                               campaign.halted[0]))

    trial_resumed = trial_started

    def request_filed(self, seq, at, campaign, name, data):
        body = need(data, "request", "object", seq, "data")
        where = "data.request"
        if not REQUEST_MEMBERS <= set(body) <= REQUEST_MEMBERS | REQUEST_OPTIONAL:
            raise Rejected(seq, "format", "%s has members %s, not %s (and optionally %s)" % (
                where, sorted(body), sorted(REQUEST_MEMBERS), sorted(REQUEST_OPTIONAL)))
        if need(body, "v", "integer", seq, where) != 1:
            raise Rejected(seq, "format", "%s.v is not 1" % where)
        for member in REQUEST_MEMBERS - {"v", "diff"}:
            need(body, member, "string", seq, where)
        need(body, "diff", "array", seq, where)
        if body["kind"] not in REQUEST_KINDS:
            raise Rejected(seq, "format", "%s.kind %r is not a request kind" % (where, body["kind"]))
        instant(body["created_at"], seq, where + ".created_at")
        instant(body["expires_at"], seq, where + ".expires_at")
        digest = hashlib.sha256(REQUEST_DOMAIN + canonical(body).encode("utf-8")).hexdigest()
        if digest != need(data, "hash", "string", seq, "data"):
            raise Rejected(seq, "hash", "request %s: hash does not match its body" % body["id"])
        if sha256_hex(canonical(body["diff"])) != need(data, "diff_hash", "string", seq, "data"):
            raise Rejected(seq, "hash", "request %s: diff_hash does not match its diff" % body["id"])
        if body["campaign"] != name:
            raise Rejected(seq, "request", "request %s names campaign %r in an entry of %r" % (
                body["id"], body["campaign"], name))
        if body["id"] in self.requests:
            raise Rejected(seq, "request", "request %s filed twice" % body["id"])
        self.requests[body["id"]] = Request(body, digest, seq)
        if body["kind"] == "tripwire" and campaign.halted is None:
            campaign.halted = (seq, body["id"])

    def pending(self, seq, name, data, what):
        request_id = need(data, "id", "string", seq, "data")
        request = self.requests.get(request_id)
        if request is None or request.campaign != name:
            raise Rejected(seq, "request", "%s request %s, never filed for campaign %r" % (
                what, request_id, name))
        if request.state != "pending":
            raise Rejected(seq, "request", "%s request %s, which is already %s" % (
                what, request_id, request.state))
        return request

    def request_decided(self, seq, at, campaign, name, data):
        decision = need(data, "decision", "object", seq, "data")
        where = "data.decision"
        verdict = need(decision, "decision", "string", seq, where)
        if verdict not in ("approve", "reject"):
            raise Rejected(seq, "format", "%s.decision %r is neither approve nor reject" % (
                where, verdict))
        by = need(decision, "by", "string", seq, where)
        key = need(decision, "key", "string", seq, where)
        reason = need(decision, "reason", "string", seq, where)
        signed = need(decision, "request", "string", seq, where)
        signature = need(decision, "signature", "string", seq, where)
        request = self.pending(seq, name, data, "a decision on")
        expires = instant(request.body["expires_at"], seq, "expires_at")
        if at > expires:
            raise Rejected(seq, "expiry", "%s decided request %s at %s, after it expired at %s" % (
                by, request.id, _at(at), request.body["expires_at"]))
        listed = [a for a in self.approvers(campaign.spec, seq) if a[0] == by and a[1] == key]
        if not listed:
            raise Rejected(seq, "decision", "%s with key %s is not an approver or admin of %r" % (
                by, key, name))
        if signed != request.hash:
            raise Rejected(seq, "signature", "%s's decision is for request hash %s, not %s's %s" % (
                by, signed, request.id, request.hash))
        message = DECISION_DOMAIN + canonical(
            {"v": 1, "decision": verdict, "request": signed, "reason": reason}).encode("utf-8")
        if not signature_verifies(key, signature, message):
            raise Rejected(seq, "signature", "%s's decision signature does not verify" % by)
        if by == request.requested_by:
            raise Rejected(seq, "decision", "%s decided their own request %s" % (by, request.id))
        if request.requested_by.startswith("local:"):
            user = request.requested_by[len("local:"):]
            if any(os_user == user for (_, _, os_user) in listed):
                raise Rejected(seq, "decision", "%s (os_user %s) decided request %s, filed by %s" % (
                    by, user, request.id, request.requested_by))
        for (_, earlier_by, earlier_key) in request.decisions:
            if earlier_by == by:
                raise Rejected(seq, "decision", "%s decided request %s twice" % (by, request.id))
            if earlier_key == key:
                raise Rejected(seq, "decision", "%s decided request %s with %s's key %s" % (
                    by, request.id, earlier_by, key))
        request.decisions.append((verdict, by, key))

    def request_closed(self, seq, at, campaign, name, data):
        state = need(data, "state", "string", seq, "data")
        need(data, "reason", "string", seq, "data")
        if state not in CLOSED_STATES:
            raise Rejected(seq, "format", "data.state %r is not a closed state" % state)
        request = self.pending(seq, name, data, "closing")
        approvals = {key for (verdict, _, key) in request.decisions if verdict == "approve"}
        rejections = [by for (verdict, by, _) in request.decisions if verdict == "reject"]
        if state == "approved":
            if rejections:
                raise Rejected(seq, "quorum", "request %s closed approved, but %s rejected it" % (
                    request.id, rejections[0]))
            quorum = self.quorum(campaign.spec, seq)
            if len(approvals) < quorum:
                raise Rejected(seq, "quorum", "request %s closed approved with %d approval(s) by "
                               "distinct keys, quorum %d" % (request.id, len(approvals), quorum))
        elif state == "rejected":
            if not rejections:
                raise Rejected(seq, "quorum", "request %s closed rejected without a rejection" % (
                    request.id))
        elif state == "expired":
            if at <= instant(request.body["expires_at"], seq, "expires_at"):
                raise Rejected(seq, "expiry", "request %s closed expired at %s, before it expires at %s"
                               % (request.id, _at(at), request.body["expires_at"]))
        else:
            newer = [r for r in self.requests.values()
                     if r.campaign == name and r.kind == request.kind and request.filed < r.filed < seq]
            if not newer:
                raise Rejected(seq, "supersede", "request %s closed superseded, but no later %s "
                               "request of %r was filed" % (request.id, request.kind, name))
            if not is_machine(request.requested_by) and \
                    all(r.requested_by.startswith("agent:") for r in newer):
                raise Rejected(seq, "supersede", "%s's request %s superseded only by an agent's "
                               "request (%s)" % (request.requested_by, request.id,
                                                 ", ".join(r.id for r in newer)))
        request.state, request.closed = state, seq
        if state == "approved" and request.kind == "tripwire":
            campaign.halted = None

    def generation_gated(self, seq, at, campaign, name, data):
        generation = need(data, "generation", "integer", seq, "data")
        campaign.gated[generation] = need(data, "passed", "boolean", seq, "data")

    def generation_closed(self, seq, at, campaign, name, data):
        """A champion is promoted only when its gates passed and either the spec in
        effect says promotion = "auto" or an approved `promotion` request for
        that generation is named."""
        generation = need(data, "generation", "integer", seq, "data")
        if not need(data, "promoted", "boolean", seq, "data"):
            return
        if not campaign.gated.get(generation, False):
            raise Rejected(seq, "promotion", "generation %d of %r promoted without passed gates"
                           % (generation, name))
        request_id = optional(data, "request", "string", seq, "data")
        if request_id is None:
            mode = (campaign.spec.get("generations") or {}).get("promotion", "approve")
            if mode != "auto":
                raise Rejected(seq, "promotion", "generation %d of %r promoted with promotion = %r "
                               "and no approved request" % (generation, name, mode))
            return
        request = self.requests.get(request_id)
        evidence = request.body.get("evidence") if request is not None else None
        if request is None or request.campaign != name or request.kind != "promotion" or \
                not isinstance(evidence, dict) or evidence.get("generation") != generation:
            raise Rejected(seq, "promotion", "generation %d of %r promoted on request %s, which is "
                           "not a promotion request for it" % (generation, name, request_id))
        if request.state != "approved":
            raise Rejected(seq, "promotion", "generation %d of %r promoted on request %s, which is %s"
                           % (generation, name, request_id, request.state))

    def spec_changed(self, seq, at, campaign, name, data):
        spec = need(data, "spec", "object", seq, "data")
        spec_hash = need(data, "spec_hash", "string", seq, "data")
        diff = need(data, "diff", "array", seq, "data")
        request_id = optional(data, "request", "string", seq, "data")
        need(data, "by", "string", seq, "data")
        for i, op in enumerate(diff):
            need(op, "op", "string", seq, "data.diff[%d]" % i)
            need(op, "path", "string", seq, "data.diff[%d]" % i)
        if sha256_hex(canonical(spec)) != spec_hash:
            raise Rejected(seq, "spec_change", "spec_hash is not the hash of the spec")
        try:
            patched = apply_patch(campaign.spec, diff)
        except PatchError as error:
            raise Rejected(seq, "spec_change", "the patch does not apply to the spec in effect: %s"
                           % error)
        if canonical(patched) != canonical(spec):
            raise Rejected(seq, "spec_change",
                           "the patch applied to the spec in effect does not give the new spec")
        classes = [(op["path"], edit_class(op["path"])) for op in diff]
        for path, cls in classes:
            if cls == "ignored":
                raise Rejected(seq, "spec_change", "%s never changes the spec in effect" % path)
        if request_id is None:
            for path, cls in classes:
                if cls != "free":
                    raise Rejected(seq, "spec_change", "%s is a %s setting, changed without a "
                                   "request" % (path, cls))
        else:
            request = self.requests.get(request_id)
            if request is None or request.campaign != name or request.state != "approved":
                raise Rejected(seq, "spec_change", "spec changed under request %s, which is not an "
                               "approved request of %r" % (request_id, name))
            if request.carried_out is not None:
                raise Rejected(seq, "spec_change", "request %s was already carried out at seq %d"
                               % (request_id, request.carried_out))
            if canonical(request.body["diff"]) != canonical(diff):
                raise Rejected(seq, "spec_change", "the patch is not request %s's" % request_id)
            for path, cls in classes:
                if cls != request.kind:
                    raise Rejected(seq, "spec_change", "%s is a %s setting, changed under %s "
                                   "request %s" % (path, cls, request.kind, request_id))
            request.carried_out = seq
        campaign.spec = spec


def _at(value):
    """An instant back as RFC 3339, for messages."""
    whole = math.floor(value)
    text = datetime.datetime.fromtimestamp(whole, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return text + ".%03dZ" % int((value - whole) * 1000)


# --- The export ----------------------------------------------------------------

HEX64 = re.compile(r"[0-9a-f]{64}")


def check_checkpoint(cp, leaves, what):
    if not isinstance(cp, dict):
        raise Rejected(None, "checkpoint", "%s is not an object" % what)
    if set(cp) != {"v", "tree_size", "root", "at", "key", "signature"}:
        raise Rejected(None, "checkpoint", "%s has members %s" % (what, sorted(cp)))
    size = need(cp, "tree_size", "integer", None, what)
    for member in ("root", "at", "key", "signature"):
        need(cp, member, "string", None, what)
    if cp["v"] != 1 or isinstance(cp["v"], bool) or size < 0 or not HEX64.fullmatch(cp["root"]):
        raise Rejected(None, "checkpoint", "%s at tree size %d is malformed" % (what, size))
    message = DOMAIN + canonical(
        {"v": 1, "tree_size": size, "root": cp["root"], "at": cp["at"]}).encode("utf-8")
    if not signature_verifies(cp["key"], cp["signature"], message):
        raise Rejected(None, "checkpoint", "%s at tree size %d: the signature does not verify"
                       % (what, size))
    if size > len(leaves):
        raise Rejected(None, "checkpoint", "%s covers %d entries, the export has %d"
                       % (what, size, len(leaves)))
    if root(leaves[:size]).hex() != cp["root"]:
        raise Rejected(None, "checkpoint", "%s at tree size %d: the entries do not have its root"
                       % (what, size))
    return size


def check_entry(seq, record, prev):
    """The chain checks of one exported entry; returns (leaf hash, payload or None)."""
    if record.get("redacted") is True:
        # Another campaign's entry: only its hash is exported.
        digest = need(record, "hash", "string", seq, "record")
        if not HEX64.fullmatch(digest):
            raise Rejected(seq, "format", "record.hash is not 64 hex digits")
        return bytes.fromhex(digest), None
    payload = need(record, "payload", "string", seq, "record")
    stored = need(record, "hash", "string", seq, "record")
    try:
        data = payload.encode("utf-8")
        body = json.loads(payload)
    except (UnicodeEncodeError, ValueError, RecursionError):
        raise Rejected(seq, "format", "the payload is not JSON text")
    try:
        if canonical(body) != payload:
            raise Rejected(seq, "canonical", "the payload is not in canonical (RFC 8785) form")
    except NotCanonical as error:
        raise Rejected(seq, "canonical", "the payload cannot be canonical: %s" % error)
    if not isinstance(body, dict) or set(body) != ENTRY_MEMBERS:
        raise Rejected(seq, "format", "the payload's members are not %s" % sorted(ENTRY_MEMBERS))
    if need(body, "v", "integer", seq, "payload") != 1:
        raise Rejected(seq, "format", "unknown format version %r" % body["v"])
    if need(body, "seq", "integer", seq, "payload") != seq:
        raise Rejected(seq, "chain", "the payload says seq %d" % body["seq"])
    for member in ("prev", "campaign", "at", "kind"):
        need(body, member, "string", seq, "payload")
    if body["prev"] != prev.hex():
        raise Rejected(seq, "chain", "prev does not match the previous entry's hash")
    if body["campaign"] != record.get("campaign") or body["kind"] != record.get("kind"):
        raise Rejected(seq, "chain", "the campaign or kind column disagrees with the payload")
    digest = leaf_hash(data)
    if digest.hex() != stored:
        raise Rejected(seq, "hash", "hash does not match the payload")
    if body["kind"] not in KINDS:
        raise Rejected(seq, "format", "unknown event kind %r" % body["kind"])
    return digest, body


def verify(lines, trusted=None):
    leaves, checkpoints, prev = [], [], bytes(32)
    governance = Governance()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        seq = len(leaves)
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):
            raise Rejected(seq, "format", "line %d is not JSON" % number)
        if not isinstance(record, dict):
            raise Rejected(seq, "format", "line %d is not a JSON object" % number)
        if "checkpoint" in record:
            checkpoints.append(record["checkpoint"])
            continue
        found = need(record, "seq", "integer", seq, "record")
        if found != seq:
            raise Rejected(seq, "chain", "line %d: expected entry %d, found entry %d "
                           "(a gap or reordering)" % (number, seq, found))
        digest, body = check_entry(seq, record, prev)
        if body is not None:
            governance.entry(seq, body)
        leaves.append(digest)
        prev = digest
    sizes = [check_checkpoint(cp, leaves, "checkpoint %d" % i) for i, cp in enumerate(checkpoints)]
    if trusted is not None:
        check_checkpoint(trusted, leaves, "the trusted checkpoint")
    checkpoints = [cp for _, cp in sorted(zip(sizes, checkpoints), key=lambda pair: pair[0])]
    # Proofs, generated and verified here.
    size = checkpoints[-1]["tree_size"] if checkpoints else len(leaves)
    tree_root = root(leaves[:size])
    for i in range(size):
        if not verify_inclusion(leaves[i], i, size, inclusion_path(leaves[:size], i), tree_root):
            raise Rejected(i, "proof", "its inclusion proof does not verify")
    for old, new in zip(checkpoints, checkpoints[1:]):
        m, n = old["tree_size"], new["tree_size"]
        path = consistency_path(leaves[:n], m)
        if not verify_consistency(m, n, bytes.fromhex(old["root"]), bytes.fromhex(new["root"]), path):
            raise Rejected(None, "checkpoint", "checkpoints at %d and %d are not consistent" % (m, n))
    return len(leaves), len(checkpoints)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("export", help="file written by `firebreak audit export` (- for stdin)")
    parser.add_argument("--trusted-checkpoint", help="a checkpoint file kept outside the database")
    args = parser.parse_args()
    try:
        if args.export == "-":
            text = sys.stdin.read()
        else:
            with open(args.export, encoding="utf-8") as stream:
                text = stream.read()
        trusted_text = None
        if args.trusted_checkpoint:
            with open(args.trusted_checkpoint, encoding="utf-8") as stream:
                trusted_text = stream.read()
    except (OSError, UnicodeDecodeError) as error:
        print("ERROR: cannot read the input: %s" % error)
        sys.exit(2)
    try:
        trusted = None
        if trusted_text is not None:
            try:
                trusted = json.loads(trusted_text)
            except ValueError:
                raise Rejected(None, "checkpoint", "the trusted checkpoint file is not JSON")
        entries, checkpoints = verify(text.splitlines(), trusted)
    except Rejected as rejection:
        print(rejection.line())
        sys.exit(1)
    except Exception as error:  # a bug of this verifier, not evidence of tampering
        print("ERROR: verifier failed: %s: %s" % (type(error).__name__, error))
        traceback.print_exc()
        sys.exit(2)
    print("ok: %d entries, %d checkpoints; chain, canonical form, governance, root, signatures "
          "and proofs verified" % (entries, checkpoints))


if __name__ == "__main__":
    main()
