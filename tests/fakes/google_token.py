#!/usr/bin/env python3
"""tests/fakes/google_token.py: test RSA keys, JWKS documents and Google-style
ID tokens, with the Python standard library and the openssl CLI only.

Python's stdlib has no RSA, so RS256/RS384/RS512 (RSASSA-PKCS1-v1_5) are done
with big-integer pow().  The key is generated once with `openssl genrsa 2048`
and kept as a PEM file at the --key path; n, e and d are read back from
`openssl pkey -text -noout`.

Command line:
    google_token.py keygen --key K
    google_token.py jwks   --key K --kid ID [--key K2 --kid ID2 ...]
    google_token.py pem    --key K            (public key PEM, SPKI)
    google_token.py sign   --key K --kid ID --claims JSON
                           [--header JSON] [--hmac-pem]

--header merges into the JOSE header ({"alg":"RS256","kid":ID,"typ":"JWT"});
a null value deletes a member; with --header-raw the --header text is the
header verbatim.  The signature follows the header's alg:
RS256/RS384/RS512 with the RSA key, "none" gives an empty signature, and
HS256 with --hmac-pem uses the public key PEM as the HMAC secret (the
algorithm-confusion attack).

As a module: make_key(path), jwks(path, kid), jwks_multi([(path, kid)...]),
public_pem(path), sign(path, kid, claims, header_overrides=None,
hmac_pem=False).
"""

import argparse
import base64
import hashlib
import hmac
import json
import os
import re
import subprocess
import sys

_DIGEST_INFO = {
    "RS256": ("sha256", bytes.fromhex("3031300d060960864801650304020105000420")),
    "RS384": ("sha384", bytes.fromhex("3041300d060960864801650304020205000430")),
    "RS512": ("sha512", bytes.fromhex("3051300d060960864801650304020305000440")),
}

_cache = {}


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _int_bytes(x):
    return x.to_bytes((x.bit_length() + 7) // 8 or 1, "big")


def make_key(path):
    """Create a 2048-bit RSA key at path unless it exists; return path."""
    if not os.path.exists(path):
        tmp = path + ".tmp%d" % os.getpid()
        subprocess.run(["openssl", "genrsa", "-out", tmp, "2048"],
                       check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    return path


def _hexblock(text, name):
    """The colon-separated hex block after 'name:' in openssl -text output."""
    m = re.search(r"^%s:\s*\n((?:[ \t]+[0-9a-fA-F:]+\n)+)" % re.escape(name),
                  text, re.M)
    if m is None:
        raise ValueError("openssl output has no %s" % name)
    return int(re.sub(r"[\s:]", "", m.group(1)), 16)


def load_key(path):
    """(n, e, d) of the key at path, creating the key if needed."""
    make_key(path)
    st = os.stat(path)
    ck = (os.path.abspath(path), st.st_mtime_ns, st.st_size)
    if ck in _cache:
        return _cache[ck]
    out = subprocess.run(["openssl", "pkey", "-in", path, "-text", "-noout"],
                         check=True, capture_output=True, text=True).stdout
    n = _hexblock(out, "modulus")
    d = _hexblock(out, "privateExponent")
    m = re.search(r"^publicExponent:\s*(\d+)", out, re.M)
    if m is None:
        raise ValueError("openssl output has no publicExponent")
    e = int(m.group(1))
    _cache[ck] = (n, e, d)
    return _cache[ck]


def public_pem(path):
    """The SubjectPublicKeyInfo PEM of the key, as bytes."""
    make_key(path)
    return subprocess.run(["openssl", "pkey", "-in", path, "-pubout"],
                          check=True, capture_output=True).stdout


def jwk(path, kid):
    n, e, _ = load_key(path)
    return {"kty": "RSA", "alg": "RS256", "use": "sig", "kid": kid,
            "n": b64url(_int_bytes(n)), "e": b64url(_int_bytes(e))}


def jwks_multi(pairs):
    return {"keys": [jwk(p, k) for p, k in pairs]}


def jwks(path, kid):
    return jwks_multi([(path, kid)])


def rsa_sign(path, alg, msg):
    n, _, d = load_key(path)
    hname, prefix = _DIGEST_INFO[alg]
    t = prefix + hashlib.new(hname, msg).digest()
    k = (n.bit_length() + 7) // 8
    if k < len(t) + 11:
        raise ValueError("key too small")
    em = b"\x00\x01" + b"\xff" * (k - len(t) - 3) + b"\x00" + t
    s = pow(int.from_bytes(em, "big"), d, n)
    return s.to_bytes(k, "big")


def sign(path, kid, claims, header_overrides=None, hmac_pem=False):
    """A compact JWS of claims (dict, or str/bytes used verbatim)."""
    if isinstance(header_overrides, str):
        # Verbatim header text (e.g. duplicate members); the signature
        # follows the alg Python's json module reads from it.
        header_text = header_overrides.encode()
        header = json.loads(header_overrides)
    else:
        header = {"alg": "RS256", "kid": kid, "typ": "JWT"}
        for k, v in (header_overrides or {}).items():
            if v is None:
                header.pop(k, None)
            else:
                header[k] = v
        header_text = json.dumps(header, separators=(",", ":")).encode()
    if isinstance(claims, dict):
        payload = json.dumps(claims, separators=(",", ":")).encode()
    elif isinstance(claims, str):
        payload = claims.encode()
    else:
        payload = claims
    signing_input = (b64url(header_text) + "." + b64url(payload)).encode()
    alg = header.get("alg")
    if alg in _DIGEST_INFO:
        sig = rsa_sign(path, alg, signing_input)
    elif alg == "none":
        sig = b""
    elif alg == "HS256" and hmac_pem:
        sig = hmac.new(public_pem(path), signing_input, hashlib.sha256).digest()
    elif alg == "HS256":
        sig = hmac.new(b"not-the-key", signing_input, hashlib.sha256).digest()
    else:
        sig = b"\x00" * 32
    return signing_input.decode() + "." + b64url(sig)


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=["keygen", "jwks", "pem", "sign"])
    ap.add_argument("--key", action="append", required=True)
    ap.add_argument("--kid", action="append", default=[])
    ap.add_argument("--claims")
    ap.add_argument("--header")
    ap.add_argument("--header-raw", action="store_true",
                    help="use --header verbatim as the header text")
    ap.add_argument("--hmac-pem", action="store_true")
    a = ap.parse_args(argv)
    if a.command == "keygen":
        for k in a.key:
            make_key(k)
    elif a.command == "pem":
        sys.stdout.write(public_pem(a.key[0]).decode())
    elif a.command == "jwks":
        if len(a.kid) != len(a.key):
            ap.error("one --kid per --key")
        print(json.dumps(jwks_multi(list(zip(a.key, a.kid)))))
    else:
        if not a.kid or a.claims is None:
            ap.error("sign needs --kid and --claims")
        claims = json.loads(a.claims)
        if a.header and a.header_raw:
            over = a.header
        else:
            over = json.loads(a.header) if a.header else None
        print(sign(a.key[0], a.kid[0], claims, over, a.hmac_pem))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
