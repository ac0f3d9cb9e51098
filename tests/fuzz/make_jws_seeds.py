#!/usr/bin/env python3
"""Writes the seed corpus of the jws fuzz target (tests/fuzz/corpus/jws/seed-*).

Signed with RFC 7515 appendix A.3's P-256 key (public test key; jws_fuzz.cc verifies with it).
ECDSA is randomized, so re-running changes the signatures but not what each seed exercises.
Needs python3-cryptography. Files not named seed-* (crashers found by fuzzing) are left alone.
"""
import base64
import hashlib
import hmac
import json
import os
import pathlib

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature


def b64(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


JWK = {
    "kty": "EC",
    "crv": "P-256",
    "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
    "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
}
D = "jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI"
KID = "oKIywvGUpTVTyxMQ3bwIIeQUudfr_CkLMjCE19ECD-U"
NOW = 1767225600  # jws_fuzz.cc's clock
KEY = ec.derive_private_key(int.from_bytes(unb64(D), "big"), ec.SECP256R1())
A3 = (
    "eyJhbGciOiJFUzI1NiJ9"
    ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
    ".DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q"
)


P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def sign(header, payload):
    header = header if isinstance(header, str) else json.dumps(header, separators=(",", ":"))
    payload = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    signing_input = b64(header) + "." + b64(payload)
    r, s = decode_dss_signature(KEY.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
    s = min(s, P256_ORDER - s)  # the low-S form, as ledgerd's issuer signs (api/jose.h)
    return signing_input + "." + b64(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


def high_s_twin(token):
    """The malleated twin (r, n - s) of a low-S token: verifies, but access tokens refuse it."""
    signing_input, sig = token.rsplit(".", 1)
    raw = unb64(sig)
    s = P256_ORDER - int.from_bytes(raw[32:], "big")
    return signing_input + "." + b64(raw[:32] + s.to_bytes(32, "big"))


def header(**extra):
    h = {"alg": "ES256", "kid": KID, "typ": "at+jwt"}
    h.update(extra)
    return {k: v for k, v in h.items() if v is not None}


def claims(**extra):
    c = {
        "iss": "https://ledger.example",
        "sub": "user-1",
        "aud": "sechex-api",
        "iat": NOW - 10,
        "exp": NOW + 600,
        "jti": "jti-1",
        "sid": "sess-1",
        "roles": ["admin"],
    }
    c.update(extra)
    return {k: v for k, v in c.items() if v is not None}


def main():
    out = pathlib.Path(__file__).resolve().parent / "corpus" / "jws"
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("seed-*"):
        old.unlink()
    valid = sign(header(), claims())
    sec1 = b"\x04" + unb64(JWK["x"]) + unb64(JWK["y"])
    hs_input = b64('{"alg":"HS256","kid":"%s","typ":"at+jwt"}' % KID) + "." + b64(json.dumps(claims()))
    seeds = {
        "valid": valid,
        "high-s-twin": high_s_twin(valid),
        "valid-aud-array-nbf": sign(header(), claims(aud=["other", "sechex-api"], nbf=NOW + 60)),
        "valid-nokid-typ-jwt": sign({"alg": "ES256", "typ": "JWT"}, {"any": "payload"}),
        "rfc7515-a3": A3,
        "alg-none": b64('{"alg":"none","kid":"%s","typ":"at+jwt"}' % KID) + "." + b64(json.dumps(claims())) + ".",
        "alg-none-case": b64('{"alg":"nOnE","typ":"at+jwt"}') + "." + b64(json.dumps(claims())) + ".",
        "alg-hs256-public-key": hs_input + "." + b64(hmac.new(sec1, hs_input.encode(), hashlib.sha256).digest()),
        "alg-rs256": sign(header(alg="RS256"), claims()),
        "alg-missing": sign(header(alg=None), claims()),
        "alg-array": sign('{"alg":["ES256"],"kid":"%s","typ":"at+jwt"}' % KID, claims()),
        "crit": sign(header(crit=["exp"], exp=1), claims()),
        "jku": sign(header(jku="https://attacker.example/jwks.json"), claims()),
        "x5u": sign(header(x5u="https://attacker.example/cert.pem"), claims()),
        "jwk": sign(header(jwk=JWK), claims()),
        "x5c": sign(header(x5c=["MIIB"]), claims()),
        "kid-wrong": sign(header(kid="nope"), claims()),
        "kid-number": sign('{"alg":"ES256","kid":7,"typ":"at+jwt"}', claims()),
        "kid-missing": sign(header(kid=None), claims()),
        "typ-wrong": sign(header(typ="JWT"), claims()),
        "typ-case": sign(header(typ="AT+JWT"), claims()),
        "dup-header": sign('{"alg":"ES256","alg":"none","kid":"%s","typ":"at+jwt"}' % KID, claims()),
        "dup-payload": sign(header(), '{"sub":"a","sub":"b","iss":"https://ledger.example"}'),
        "exp-float": sign(header(), claims(exp=NOW + 600.5)),
        "exp-huge": sign(header(), '{"iss":"https://ledger.example","sub":"u","aud":"sechex-api","iat":0,'
                                   '"exp":18446744073709551615,"jti":"j","sid":"s","roles":[]}'),
        "exp-int64-max": sign(header(), claims(exp=2**63 - 1)),
        "exp-negative": sign(header(), claims(exp=-1)),
        "exp-exponent": sign(header(), '{"exp":1e400,"iat":-1e400}'),
        "exp-string": sign(header(), claims(exp=str(NOW + 600))),
        "iat-future": sign(header(), claims(iat=NOW + 61)),
        "nbf-skew-edge": sign(header(), claims(nbf=NOW + 60, iat=NOW + 60)),
        "nested-payload": sign(header(), "[" * 200 + "]" * 200),
        "nested-header": b64('{"a":' * 50 + "1" + "}" * 50) + ".e30.",
        "huge-header-string": sign(header(pad="A" * 5000), claims()),
        "huge-header-valid": sign(header(pad="A" * 3000), claims()),
        "huge-payload-valid": sign(header(), claims(pad="B" * 4000)),
        "huge-payload": sign(header(), claims(pad="B" * 6000)),
        "huge-sig": valid + "A" * 2000,
        "sig-short": valid[: valid.rfind(".") + 21],
        "bad-base64-padding": valid.replace(".", "=.", 1),
        "bad-base64-std-alphabet": valid.replace("-", "+").replace("_", "/"),
        "bad-base64-len1mod4": "eyJ.e30.AAAAA",
        "two-segments": valid[: valid.rfind(".")],
        "four-segments": valid + ".e30",
        "empty-segments": "..",
        "jwk-a3": json.dumps(JWK),
        "jwk-a3-sig-ops": json.dumps(dict(JWK, use="sig", key_ops=["verify"], alg="ES256", d=D)),
        "jwk-off-curve": json.dumps(dict(JWK, y="AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")),
        "base64url": b64(bytes(range(256))),
    }
    for name, text in seeds.items():
        (out / ("seed-" + name)).write_text(text)


if __name__ == "__main__":
    main()
