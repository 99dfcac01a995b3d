// tls::ClientContext: the settings load, and every error names the setting, the file and the
// problem (the operator reads it in curfew's startup error).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "test_pki.h"
#include "tls/client_context.h"

namespace tls = curfew::tls;
using curfew_test::TestPki;
using ::testing::HasSubstr;

namespace {

std::string error_of(const tls::ClientSettings& settings) {
  auto context = tls::ClientContext::create(settings);
  if (context.ok()) return "(created)";
  EXPECT_EQ(context.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(context.status().message());
}

TEST(TlsClientContext, LoadsACaFileAClientIdentityOrTheSystemRoots) {
  TestPki pki;
  ASSERT_TRUE(pki.ok()) << pki.error();
  EXPECT_TRUE(tls::ClientContext::create({.ca_file = pki.path("ca.pem")}).ok());
  EXPECT_TRUE(tls::ClientContext::create({.ca_file = pki.path("ca.pem"),
                                          .cert_file = pki.path("client.pem"),
                                          .key_file = pki.path("client.key")})
                  .ok());
  EXPECT_TRUE(tls::ClientContext::create({}).ok());
}

TEST(TlsClientContext, ErrorsNameTheSettingTheFileAndTheProblem) {
  TestPki pki;
  ASSERT_TRUE(pki.ok()) << pki.error();
  const std::string missing = pki.path("missing.pem");
  const std::string garbage = pki.path("garbage.pem");
  std::ofstream(garbage) << "not a certificate\n";

  EXPECT_EQ(error_of({.ca_file = missing}),
            "tls.ca_file '" + missing + "': No such file or directory");
  EXPECT_EQ(error_of({.ca_file = pki.dir()}), "tls.ca_file '" + pki.dir() + "': Is a directory");
  EXPECT_EQ(error_of({.ca_file = garbage}),
            "tls.ca_file '" + garbage + "': no PEM certificate in it");
  // A key is not a certificate.
  EXPECT_EQ(error_of({.ca_file = pki.path("ca.key")}),
            "tls.ca_file '" + pki.path("ca.key") + "': no PEM certificate in it");

  EXPECT_EQ(error_of({.cert_file = pki.path("client.pem")}),
            "tls.cert_file and tls.key_file must be set together (client certificate)");
  EXPECT_EQ(error_of({.cert_file = missing, .key_file = pki.path("client.key")}),
            "tls.cert_file '" + missing + "': No such file or directory");
  EXPECT_EQ(error_of({.cert_file = garbage, .key_file = pki.path("client.key")}),
            "tls.cert_file '" + garbage + "': no PEM certificate in it");
  EXPECT_EQ(error_of({.cert_file = pki.path("client.pem"), .key_file = missing}),
            "tls.key_file '" + missing + "': No such file or directory");
  EXPECT_EQ(error_of({.cert_file = pki.path("client.pem"), .key_file = garbage}),
            "tls.key_file '" + garbage + "': no PEM private key in it");
  EXPECT_EQ(error_of({.cert_file = pki.path("client.pem"), .key_file = pki.path("server.key")}),
            "tls.key_file '" + pki.path("server.key") + "' does not match tls.cert_file '" +
                pki.path("client.pem") + "'");
  // Never prompts for a passphrase: says it cannot use the key.
  EXPECT_EQ(
      error_of({.cert_file = pki.path("client.pem"), .key_file = pki.path("client_encrypted.key")}),
      "tls.key_file '" + pki.path("client_encrypted.key") +
          "': the private key is encrypted (not supported: curfew cannot ask for its "
          "passphrase)");
  // A PEM block that is not a key OpenSSL can use.
  const std::string broken = pki.path("broken.key");
  std::ofstream(broken) << "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
  EXPECT_THAT(error_of({.cert_file = pki.path("client.pem"), .key_file = broken}),
              HasSubstr("tls.key_file '" + broken + "': not a usable PEM private key: "));
}

TEST(TlsClientContext, TheServerNameSettingOverridesTheEndpointsHost) {
  auto derived = tls::ClientContext::create({});
  ASSERT_TRUE(derived.ok());
  EXPECT_EQ((*derived)->server_name_for("backend.internal"), "backend.internal");
  EXPECT_EQ((*derived)->server_name_for("10.0.0.7"), "10.0.0.7");
  EXPECT_EQ((*derived)->server_name_for("[::1]"), "::1");
  auto overridden = tls::ClientContext::create({.server_name = "upstream.test"});
  ASSERT_TRUE(overridden.ok());
  EXPECT_EQ((*overridden)->server_name_for("10.0.0.7"), "upstream.test");
}

}  // namespace
