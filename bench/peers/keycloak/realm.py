"""The realm file bench/peers/keycloak/start imports (kc.sh start-dev --import-realm reads
<home>/data/import/*.json). Used as a module by start and bench/peers_bench.py, or alone:
  python3 bench/peers/keycloak/realm.py OUT.json USERS [--hashing matched|default] [--brute-force]

The realm "bench" holds:
  - client "bench": confidential (client_secret_post / basic), direct access grants only (the
    password grant of the token endpoint), no browser flow, no service account;
  - client "bench-admin": confidential, service account only, with realm-management roles to
    read users and their credentials, the brute-force status, events and the realm settings
    (peers_bench.py checks the stored hashes and toggles brute-force detection through it);
  - USERS users bench-NNNN@example.com (username = email, emailVerified, first and last name set
    so that the user profile asks for nothing), plus bench-brute@example.com for the brute-force
    test, each with PASSWORD as a plain credential value: Keycloak hashes it on import with the
    realm's password policy;
  - the password policy hashAlgorithm(argon2) when hashing is "matched" (the Argon2 cost itself
    is server-wide SPI configuration, set by start), none when "default" (Keycloak's own default);
  - brute-force detection off unless asked (peers_bench.py switches it on through the admin API
    for its brute-force test), failureFactor 5, the rest at Keycloak's defaults.
"""
import argparse
import json

PASSWORD = "Bench-Tr0ub4dor&3x"  # as bench/identity_bench.py
CLIENT_ID = "bench"
CLIENT_SECRET = "bench-client-secret-0123456789abcdef"
ADMIN_CLIENT_ID = "bench-admin"
ADMIN_CLIENT_SECRET = "bench-admin-secret-0123456789abcdef"
REALM = "bench"
BRUTE_USER = "bench-brute@example.com"


def email(i):
    return f"bench-{i:04d}@example.com"


def user(username, i, password):
    return {"username": username, "email": username, "emailVerified": True, "enabled": True,
            "firstName": "Bench", "lastName": f"User{i:04d}",
            "credentials": [{"type": "password", "value": password, "temporary": False}]}


def realm(users, hashing="matched", brute_force=False, failure_factor=5, password=PASSWORD):
    assert hashing in ("matched", "default")
    r = {
        "realm": REALM, "enabled": True, "sslRequired": "none",
        "bruteForceProtected": brute_force, "failureFactor": failure_factor,
        "permanentLockout": False,
        "clients": [
            {"clientId": CLIENT_ID, "enabled": True, "protocol": "openid-connect",
             "publicClient": False, "clientAuthenticatorType": "client-secret",
             "secret": CLIENT_SECRET, "directAccessGrantsEnabled": True,
             "standardFlowEnabled": False, "implicitFlowEnabled": False,
             "serviceAccountsEnabled": False},
            {"clientId": ADMIN_CLIENT_ID, "enabled": True, "protocol": "openid-connect",
             "publicClient": False, "clientAuthenticatorType": "client-secret",
             "secret": ADMIN_CLIENT_SECRET, "directAccessGrantsEnabled": False,
             "standardFlowEnabled": False, "implicitFlowEnabled": False,
             "serviceAccountsEnabled": True},
        ],
        "users": [user(email(i), i, password) for i in range(users)]
        + [user(BRUTE_USER, users, password),
           {"username": f"service-account-{ADMIN_CLIENT_ID}", "enabled": True,
            "serviceAccountClientId": ADMIN_CLIENT_ID,
            "clientRoles": {"realm-management": ["view-users", "manage-users", "view-events",
                                                 "manage-events", "view-realm",
                                                 "manage-realm"]}}],
    }
    if hashing == "matched":
        r["passwordPolicy"] = "hashAlgorithm(argon2)"
    return r


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("users", type=int)
    p.add_argument("--hashing", choices=["matched", "default"], default="matched")
    p.add_argument("--brute-force", action="store_true")
    a = p.parse_args()
    with open(a.out, "w") as f:
        json.dump(realm(a.users, a.hashing, a.brute_force), f)
