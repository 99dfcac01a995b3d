// TestPki: certificates made for one test with the openssl command line, in a temporary
// directory removed when the TestPki is destroyed.
//
//   ca.pem/ca.key            the CA the client trusts
//   server.pem/server.key    signed by it, for DNS "upstream.test" and IP 127.0.0.1
//   client.pem/client.key    signed by it, for mTLS
//   wrong_ca.pem/.key        another CA, trusted by nobody
//   server_by_wrong_ca.pem   server.key's certificate signed by the wrong CA
//   client_encrypted.key     client.key under a passphrase
#pragma once

#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "child_process.h"

namespace curfew_test {

class TestPki {
 public:
  TestPki() {
    std::string pattern = (std::filesystem::temp_directory_path() / "curfew-tls-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) {
      error_ = "mkdtemp failed";
      return;
    }
    dir_ = pattern;
    openssl_ = find_program("openssl");
    if (openssl_.empty()) {
      error_ = "no openssl command on PATH";
      return;
    }
    std::ofstream(path("pki.cnf")) << kConfig;
    const std::vector<std::string> ec = {"-newkey", "ec", "-pkeyopt",
                                         "ec_paramgen_curve:prime256v1", "-nodes"};
    auto req = [&](std::vector<std::string> extra) {
      std::vector<std::string> args = {"req", "-config", path("pki.cnf")};
      args.insert(args.end(), ec.begin(), ec.end());
      args.insert(args.end(), extra.begin(), extra.end());
      return args;
    };
    auto sign = [&](const std::string& csr, const std::string& ca, const std::string& serial,
                    const std::string& ext, const std::string& out) {
      return std::vector<std::string>{"x509",        "-req",
                                      "-in",         path(csr),
                                      "-CA",         path(ca + ".pem"),
                                      "-CAkey",      path(ca + ".key"),
                                      "-set_serial", serial,
                                      "-days",       "2",
                                      "-extfile",    path("pki.cnf"),
                                      "-extensions", ext,
                                      "-out",        path(out)};
    };
    ok_ = run(req({"-x509", "-days", "2", "-subj", "/CN=curfew test CA", "-extensions", "ca_ext",
                   "-keyout", path("ca.key"), "-out", path("ca.pem")})) &&
          run(req({"-x509", "-days", "2", "-subj", "/CN=curfew wrong CA", "-extensions", "ca_ext",
                   "-keyout", path("wrong_ca.key"), "-out", path("wrong_ca.pem")})) &&
          run(req({"-new", "-subj", "/CN=upstream.test", "-keyout", path("server.key"), "-out",
                   path("server.csr")})) &&
          run(sign("server.csr", "ca", "2", "server_ext", "server.pem")) &&
          run(sign("server.csr", "wrong_ca", "3", "server_ext", "server_by_wrong_ca.pem")) &&
          run(req({"-new", "-subj", "/CN=curfew client", "-keyout", path("client.key"), "-out",
                   path("client.csr")})) &&
          run(sign("client.csr", "ca", "4", "client_ext", "client.pem")) &&
          run({"pkey", "-in", path("client.key"), "-aes256", "-passout", "pass:secret", "-out",
               path("client_encrypted.key")});
  }
  TestPki(const TestPki&) = delete;
  TestPki& operator=(const TestPki&) = delete;
  ~TestPki() {
    std::error_code ignored;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ignored);
  }

  bool ok() const { return ok_; }
  const std::string& error() const { return error_; }
  std::string path(const std::string& name) const { return dir_ + "/" + name; }
  const std::string& dir() const { return dir_; }
  const std::string& openssl() const { return openssl_; }

 private:
  static constexpr const char* kConfig = R"(
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca_ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[server_ext]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:upstream.test,IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[client_ext]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
)";

  bool run(std::vector<std::string> args) {
    args.insert(args.begin(), openssl_);
    ChildProcess child(args, path("openssl.log"));
    const auto status = child.wait_exit(std::chrono::seconds(30));
    if (status == std::optional<int>(0)) return true;
    std::ifstream log(path("openssl.log"));
    error_ = "openssl " + args[1] + " failed: " +
             std::string(std::istreambuf_iterator<char>(log), std::istreambuf_iterator<char>());
    return false;
  }

  std::string dir_;
  std::string openssl_;
  std::string error_;
  bool ok_ = false;
};

}  // namespace curfew_test
