#include "tls/client_context.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "tls/internal/openssl_errors.h"

namespace curfew::tls {
namespace {

using internal::take_openssl_errors;

// TLS 1.2 suites: gRPC 1.51's default list (ephemeral key exchange and AEAD only, as RFC 9113
// §9.2.2 asks of HTTP/2). TLS 1.3 keeps OpenSSL's defaults: the same three suites gRPC lists.
constexpr char kTls12Ciphers[] =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-RSA-AES256-GCM-SHA384";
constexpr unsigned char kAlpnH2[] = {2, 'h', '2'};

struct BioFree {
  void operator()(BIO* b) const noexcept { BIO_free(b); }
};
struct X509Free {
  void operator()(X509* x) const noexcept { X509_free(x); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* k) const noexcept { EVP_PKEY_free(k); }
};
struct CtxFree {
  void operator()(SSL_CTX* c) const noexcept { SSL_CTX_free(c); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
using CtxPtr = std::unique_ptr<SSL_CTX, CtxFree>;

// Never asks for a passphrase: OpenSSL's default would prompt on the terminal.
int no_passphrase(char* /*buf*/, int /*size*/, int /*rwflag*/, void* /*userdata*/) { return 0; }

std::string quoted(const std::string& setting, const std::string& path) {
  return "tls." + setting + " '" + path + "'";
}

absl::Status file_error(const std::string& setting, const std::string& path,
                        const std::string& problem) {
  return absl::InvalidArgumentError(quoted(setting, path) + ": " + problem);
}

// The file's bytes, in a memory BIO: OpenSSL's own file loading reports a missing file as a
// chain of library errors, this says "No such file or directory".
absl::StatusOr<BioPtr> read_file(const std::string& setting, const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rbe");
  if (f == nullptr) return file_error(setting, path, std::strerror(errno));
  std::string bytes;
  char chunk[4096];
  size_t n = 0;
  while ((n = std::fread(chunk, 1, sizeof chunk, f)) > 0) {  // bounded by the file's size
    bytes.append(chunk, n);
    if (bytes.size() > (16u << 20)) {
      std::fclose(f);
      return file_error(setting, path, "larger than 16 MiB, not a PEM file");
    }
  }
  const bool failed = std::ferror(f) != 0;
  const int err = errno;
  std::fclose(f);
  if (failed) return file_error(setting, path, std::strerror(err));
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (bio == nullptr || BIO_write(bio.get(), bytes.data(), static_cast<int>(bytes.size())) !=
                            static_cast<int>(bytes.size())) {
    return file_error(setting, path, "out of memory");
  }
  return bio;
}

// True when the PEM reader stopped only because no more PEM blocks follow.
bool at_end_of_pem() {
  const unsigned long e = ERR_peek_last_error();
  return ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE;
}

absl::Status load_roots(SSL_CTX* ctx, const std::string& path) {
  auto bio = read_file("ca_file", path);
  if (!bio.ok()) return bio.status();
  X509_STORE* store = SSL_CTX_get_cert_store(ctx);
  int count = 0;
  ERR_clear_error();
  for (;;) {  // bounded by the file's size: each turn consumes one PEM block
    X509Ptr cert(PEM_read_bio_X509(bio->get(), nullptr, no_passphrase, nullptr));
    if (cert == nullptr) break;
    if (X509_STORE_add_cert(store, cert.get()) != 1) {
      return file_error("ca_file", path, take_openssl_errors());
    }
    ++count;
  }
  if (count == 0) {
    ERR_clear_error();
    return file_error("ca_file", path, "no PEM certificate in it");
  }
  if (!at_end_of_pem()) return file_error("ca_file", path, take_openssl_errors());
  ERR_clear_error();
  return absl::OkStatus();
}

absl::Status load_client_identity(SSL_CTX* ctx, const ClientSettings& s) {
  if (s.cert_file.empty() != s.key_file.empty()) {
    return absl::InvalidArgumentError(
        "tls.cert_file and tls.key_file must be set together (client certificate)");
  }
  if (s.cert_file.empty()) return absl::OkStatus();

  auto cert_bio = read_file("cert_file", s.cert_file);
  if (!cert_bio.ok()) return cert_bio.status();
  ERR_clear_error();
  X509Ptr leaf(PEM_read_bio_X509_AUX(cert_bio->get(), nullptr, no_passphrase, nullptr));
  if (leaf == nullptr) {
    ERR_clear_error();
    return file_error("cert_file", s.cert_file, "no PEM certificate in it");
  }
  if (SSL_CTX_use_certificate(ctx, leaf.get()) != 1) {
    return file_error("cert_file", s.cert_file, take_openssl_errors());
  }
  for (;;) {  // the rest of the chain, bounded by the file's size
    X509Ptr extra(PEM_read_bio_X509(cert_bio->get(), nullptr, no_passphrase, nullptr));
    if (extra == nullptr) break;
    if (SSL_CTX_add0_chain_cert(ctx, extra.get()) != 1) {
      return file_error("cert_file", s.cert_file, take_openssl_errors());
    }
    (void)extra.release();  // owned by ctx now
  }
  if (!at_end_of_pem()) return file_error("cert_file", s.cert_file, take_openssl_errors());
  ERR_clear_error();

  auto key_bio = read_file("key_file", s.key_file);
  if (!key_bio.ok()) return key_bio.status();
  // Looked at before decoding: OpenSSL 3's decoders report most failures as "unsupported".
  char* text = nullptr;
  const long text_len = BIO_get_mem_data(key_bio->get(), &text);
  const std::string_view pem(text, text_len > 0 ? static_cast<size_t>(text_len) : 0);
  PkeyPtr key(PEM_read_bio_PrivateKey(key_bio->get(), nullptr, no_passphrase, nullptr));
  if (key == nullptr) {
    const std::string reasons = take_openssl_errors();
    if (pem.find("PRIVATE KEY-----") == std::string_view::npos) {
      return file_error("key_file", s.key_file, "no PEM private key in it");
    }
    if (pem.find("ENCRYPTED") != std::string_view::npos) {
      return file_error("key_file", s.key_file,
                        "the private key is encrypted (not supported: curfew cannot ask for its "
                        "passphrase)");
    }
    return file_error("key_file", s.key_file, "not a usable PEM private key: " + reasons);
  }
  if (X509_check_private_key(leaf.get(), key.get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(quoted("key_file", s.key_file) + " does not match " +
                                      quoted("cert_file", s.cert_file));
  }
  if (SSL_CTX_use_PrivateKey(ctx, key.get()) != 1) {
    return file_error("key_file", s.key_file, take_openssl_errors());
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::shared_ptr<ClientContext>> ClientContext::create(
    const ClientSettings& settings) {
  ERR_clear_error();
  CtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  if (ctx == nullptr) return absl::InternalError("tls: " + take_openssl_errors());
  SSL_CTX_set_default_passwd_cb(ctx.get(), no_passphrase);
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  if (SSL_CTX_set_cipher_list(ctx.get(), kTls12Ciphers) != 1) {
    return absl::InternalError("tls: cipher list: " + take_openssl_errors());
  }
  // HTTP/2 forbids renegotiation (RFC 9113 §9.2.1). An EOF without close_notify reads as an
  // ordinary end of stream, as on a plain socket: HTTP/2 frames say where each stream ends, so
  // a truncation shows as an unfinished stream.
  SSL_CTX_set_options(
      ctx.get(), SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_COMPRESSION);
  // The session's writer writes from a buffer that moves and shrinks between retries, and takes
  // what fits a record at a time (TlsTransport::try_write).
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  if (SSL_CTX_set_alpn_protos(ctx.get(), kAlpnH2, sizeof kAlpnH2) != 0) {  // 0 is success here
    return absl::InternalError("tls: ALPN: " + take_openssl_errors());
  }
  if (settings.ca_file.empty()) {
    if (SSL_CTX_set_default_verify_paths(ctx.get()) != 1) {
      return absl::InvalidArgumentError("tls: the system's CA roots: " + take_openssl_errors());
    }
  } else if (absl::Status s = load_roots(ctx.get(), settings.ca_file); !s.ok()) {
    return s;
  }
  if (absl::Status s = load_client_identity(ctx.get(), settings); !s.ok()) return s;
  ERR_clear_error();
  auto* context = new ClientContext(ctx.get(), settings.server_name);
  (void)ctx.release();  // owned by `context` now
  return std::shared_ptr<ClientContext>(context);
}

ClientContext::~ClientContext() { SSL_CTX_free(ctx_); }

std::string ClientContext::server_name_for(std::string_view host) const {
  if (!server_name_.empty()) return server_name_;
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  return std::string(host);
}

}  // namespace curfew::tls
