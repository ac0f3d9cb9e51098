// `ledgerctl device`: a software device for trying exclusive mode from a terminal (API.md
// "Exclusive mode"; README "Exclusive mode from a terminal"). Development only: its key lives in
// a file, so it is accepted only by a ledgerd started with --allow-self-attestation.
//
//   device new    --key FILE                         a P-256 key (PEM, 0600); prints its RFC 7638
//                                                    thumbprint
//   device attest --key FILE --challenge C --origin URL [--rp-id ID] [--name NAME]
//                                                    prints the body of POST
//                                                    /v1/secure/exclusive/start: a packed self
//                                                    attestation (UP and UV set) of this key over
//                                                    clientDataJSON {webauthn.create, C, URL}
//   device proof  --key FILE --token T --url URL [--method POST] [--jti J] [--iat SECONDS]
//                                                    prints a DPoP proof (RFC 9449) for one request
//
// Exit codes: 0 done, 2 cannot run (bad arguments, unreadable key).
#pragma once

#include <string>
#include <vector>

namespace sechex::ops {

int cmd_device(const std::vector<std::string>& args);

}  // namespace sechex::ops
