// The Authorization header as the authenticator (Bearer) and the device routes (DPoP, or Bearer
// per spec 001) read it: RFC 7235 §2.1, the scheme case-insensitive, one space, a credential.
#include <gtest/gtest.h>

#include "api/auth/auth.h"

namespace sechex::api {
namespace {

TEST(AuthorizationHeader, TheCredentialFollowsItsSchemeInAnyCaseAndOneSpace) {
  EXPECT_EQ(authorization_credential("Bearer abc", "bearer"), "abc");
  EXPECT_EQ(authorization_credential("bEaReR abc", "bearer"), "abc");
  EXPECT_EQ(authorization_credential("DPoP x.y.z", "dpop"), "x.y.z");
  EXPECT_FALSE(authorization_credential("DPoP x.y.z", "bearer"));
  EXPECT_FALSE(authorization_credential("Bearer", "bearer")) << "no credential";
  EXPECT_FALSE(authorization_credential("Bearer ", "bearer")) << "an empty credential";
  EXPECT_FALSE(authorization_credential("Bearerabc", "bearer")) << "no space";
  EXPECT_FALSE(authorization_credential("Basic YWRtaW46YWRtaW4=", "bearer"));
  EXPECT_FALSE(authorization_credential("", "dpop"));
  EXPECT_EQ(authorization_credential("Bearer  abc", "bearer"), " abc")
      << "a second space is part of the credential, which then fails verification";
}

}  // namespace
}  // namespace sechex::api
