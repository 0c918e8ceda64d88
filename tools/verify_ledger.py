#!/usr/bin/env python3
"""An independent verifier of a firebreak ledger export, written from
docs/ledger-format.md alone; it trusts nothing the firebreak binary computed.

    firebreak audit export > ledger.jsonl
    python3 tools/verify_ledger.py ledger.jsonl [--trusted-checkpoint cp.json]

It recomputes every payload's canonical form (RFC 8785), every leaf hash, the
`prev` chain, every change request's hash and every signed decision's Ed25519
signature (nobody deciding their own request or deciding twice), the RFC 6962 root at each checkpoint, each checkpoint's Ed25519
signature, an inclusion proof for every entry and a consistency proof between
successive checkpoints (generating and verifying the proofs itself). Exit 0 when
everything holds; 1 with the first problem otherwise. Needs Python 3 and the
`cryptography` package.
"""
import argparse
import base64
import hashlib
import json
import math
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

DOMAIN = b"firebreak checkpoint v1\n"
REQUEST_DOMAIN = b"firebreak request v1\n"
DECISION_DOMAIN = b"firebreak decision v1\n"


class Bad(Exception):
    pass


# --- RFC 8785 -------------------------------------------------------------

def es_number(x):
    """ECMAScript Number::toString of a float, as RFC 8785 requires."""
    if isinstance(x, bool):
        raise Bad("booleans are not numbers")
    if isinstance(x, int):
        return str(x)
    if math.isnan(x) or math.isinf(x):
        raise Bad("non-finite number")
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
    raise Bad("not JSON: %r" % (value,))


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


# --- The ledger -----------------------------------------------------------

def check_checkpoint(cp, leaves):
    size = cp["tree_size"]
    if set(cp) != {"v", "tree_size", "root", "at", "key", "signature"} or cp["v"] != 1:
        raise Bad("checkpoint at tree size %s is malformed" % size)
    if not cp["key"].startswith("ed25519:"):
        raise Bad("checkpoint key is not ed25519")
    key = Ed25519PublicKey.from_public_bytes(base64.b64decode(cp["key"][len("ed25519:"):]))
    message = DOMAIN + canonical({"v": cp["v"], "tree_size": size, "root": cp["root"], "at": cp["at"]}).encode()
    try:
        key.verify(base64.b64decode(cp["signature"]), message)
    except InvalidSignature:
        raise Bad("checkpoint at tree size %d: the signature does not verify" % size)
    if size > len(leaves):
        raise Bad("checkpoint covers %d entries, the export has %d" % (size, len(leaves)))
    if root(leaves[:size]).hex() != cp["root"]:
        raise Bad("checkpoint at tree size %d: the entries do not have its root" % size)


def ed25519_key(text):
    if not text.startswith("ed25519:"):
        raise Bad("%r is not an ed25519 key" % text)
    return Ed25519PublicKey.from_public_bytes(base64.b64decode(text[len("ed25519:"):]))


def check_governance(seq, body, requests):
    """Request hashes and decision signatures (docs/ledger-format.md, *Change
    requests and signed decisions*)."""
    kind, data = body["kind"], body["data"]
    if kind == "request_filed":
        request = data["request"]
        digest = sha256(REQUEST_DOMAIN + canonical(request).encode()).hex()
        if digest != data["hash"]:
            raise Bad("seq %d: request %s: hash does not match its body" % (seq, request["id"]))
        requests[request["id"]] = {"hash": digest, "by": request["requested_by"], "deciders": set()}
    elif kind == "request_decided":
        request = requests.get(data["id"])
        if request is None:
            raise Bad("seq %d: decision on unknown request %s" % (seq, data["id"]))
        decision = data["decision"]
        if decision["request"] != request["hash"]:
            raise Bad("seq %d: decision is for another request" % seq)
        message = DECISION_DOMAIN + canonical({
            "v": 1, "decision": decision["decision"], "request": decision["request"],
            "reason": decision["reason"]}).encode()
        try:
            ed25519_key(decision["key"]).verify(base64.b64decode(decision["signature"]), message)
        except InvalidSignature:
            raise Bad("seq %d: %s's decision signature does not verify" % (seq, decision["by"]))
        if decision["by"] == request["by"] or decision["by"] in request["deciders"]:
            raise Bad("seq %d: %s may not decide request %s" % (seq, decision["by"], data["id"]))
        request["deciders"].add(decision["by"])


def verify(lines, trusted=None):
    leaves, checkpoints, prev, requests = [], [], bytes(32), {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        record = json.loads(line)
        if "checkpoint" in record:
            checkpoints.append(record["checkpoint"])
            continue
        seq = len(leaves)
        if record.get("seq") != seq:
            raise Bad("line %d: expected entry %d, found %r" % (number, seq, record.get("seq")))
        if record.get("redacted"):
            # Another campaign's entry: only its hash is exported.
            digest = bytes.fromhex(record["hash"])
        else:
            payload = record["payload"]
            body = json.loads(payload)
            if canonical(body) != payload:
                raise Bad("seq %d: payload is not canonical" % seq)
            if body["v"] != 1 or body["seq"] != seq:
                raise Bad("seq %d: wrong version or sequence number" % seq)
            if body["campaign"] != record["campaign"] or body["kind"] != record["kind"]:
                raise Bad("seq %d: campaign or kind disagrees with the payload" % seq)
            if body["prev"] != prev.hex():
                raise Bad("seq %d: prev does not match the previous entry's hash" % seq)
            digest = leaf_hash(payload.encode())
            if digest.hex() != record["hash"]:
                raise Bad("seq %d: hash does not match the payload" % seq)
            check_governance(seq, body, requests)
        leaves.append(digest)
        prev = digest
    checkpoints.sort(key=lambda c: c["tree_size"])
    for cp in checkpoints + ([trusted] if trusted else []):
        check_checkpoint(cp, leaves)
    # Proofs, generated and verified here.
    last = checkpoints[-1] if checkpoints else {"tree_size": len(leaves)}
    size = last["tree_size"]
    tree_root = root(leaves[:size])
    for i in range(size):
        if not verify_inclusion(leaves[i], i, size, inclusion_path(leaves[:size], i), tree_root):
            raise Bad("seq %d: its inclusion proof does not verify" % i)
    for old, new in zip(checkpoints, checkpoints[1:]):
        m, n = old["tree_size"], new["tree_size"]
        path = consistency_path(leaves[:n], m)
        if not verify_consistency(m, n, bytes.fromhex(old["root"]), bytes.fromhex(new["root"]), path):
            raise Bad("checkpoints at %d and %d are not consistent" % (m, n))
    return len(leaves), len(checkpoints)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("export", help="file written by `firebreak audit export` (- for stdin)")
    parser.add_argument("--trusted-checkpoint", help="a checkpoint file kept outside the database")
    args = parser.parse_args()
    stream = sys.stdin if args.export == "-" else open(args.export, encoding="utf-8")
    trusted = json.load(open(args.trusted_checkpoint)) if args.trusted_checkpoint else None
    try:
        entries, checkpoints = verify(stream.read().splitlines(), trusted)
    except (Bad, KeyError, ValueError, TypeError) as error:
        print("REJECTED: %s" % error)
        sys.exit(1)
    print("ok: %d entries, %d checkpoints; chain, canonical form, root, signatures and proofs verified"
          % (entries, checkpoints))


if __name__ == "__main__":
    main()
