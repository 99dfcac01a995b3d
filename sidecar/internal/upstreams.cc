#include "sidecar/internal/upstreams.h"

#include <fstream>
#include <sstream>

#include "absl/status/status.h"

namespace curfew::sidecar {
namespace {

absl::StatusOr<std::string> read_file(const std::string& path, const std::string& what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(what + ": cannot read \"" + path + "\"");
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials(const config::Upstream& u) {
  if (!u.tls.enabled) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions options;
  const std::string where = "upstream '" + u.name + "' tls";
  if (!u.tls.ca_file.empty()) {
    auto ca = read_file(u.tls.ca_file, where + ".ca_file");
    if (!ca.ok()) return ca.status();
    options.pem_root_certs = *ca;
  }
  if (!u.tls.cert_file.empty()) {
    auto cert = read_file(u.tls.cert_file, where + ".cert_file");
    if (!cert.ok()) return cert.status();
    auto key = read_file(u.tls.key_file, where + ".key_file");
    if (!key.ok()) return key.status();
    options.pem_cert_chain = *cert;
    options.pem_private_key = *key;
  }
  return grpc::SslCredentials(options);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Upstream>> Upstream::open(const config::Upstream& config,
                                                         int max_message_bytes,
                                                         int max_metadata_bytes) {
  auto creds = credentials(config);
  if (!creds.ok()) return creds.status();
  auto upstream = std::unique_ptr<Upstream>(new Upstream());
  upstream->name_ = config.name;
  for (const std::string& target : config.endpoints) {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(max_message_bytes);
    args.SetMaxSendMessageSize(max_message_bytes);
    // An upstream's headers and trailers may be as large as what the listeners accept from callers.
    args.SetInt(GRPC_ARG_MAX_METADATA_SIZE, max_metadata_bytes);
    args.SetInt(GRPC_ARG_ENABLE_CHANNELZ, 0);  // as on the listeners: nothing reads it
    // curfew owns retries (with deadlines and budgets); gRPC's own would multiply calls.
    args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);
    // Reconnect quickly after an upstream restart, bounded by the configured connect timeout.
    const int connect_ms = static_cast<int>(
        std::chrono::duration_cast<std::chrono::milliseconds>(config.connect_timeout).count());
    args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, std::max(100, connect_ms));
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, std::max(1000, connect_ms));
    if (!config.tls.server_name.empty()) {
      args.SetSslTargetNameOverride(config.tls.server_name);
    }
    args.SetUserAgentPrefix("curfew/" CURFEW_VERSION);
    Endpoint e;
    e.channel = grpc::CreateCustomChannel(target, *creds, args);
    e.stub = std::make_unique<grpc::GenericStub>(e.channel);
    upstream->endpoints_.push_back(std::move(e));
  }
  return upstream;
}

grpc::GenericStub& Upstream::next_stub() noexcept {
  if (endpoints_.size() == 1) return *endpoints_.front().stub;
  const unsigned i = next_.fetch_add(1, std::memory_order_relaxed);
  return *endpoints_[i % endpoints_.size()].stub;
}

absl::StatusOr<std::shared_ptr<const Upstreams>> Upstreams::open(const config::Config& config) {
  int max_message_bytes = 4 << 20;
  int max_metadata_bytes = 8 << 10;  // gRPC's default
  for (const auto& l : config.listeners) {
    max_message_bytes = std::max(max_message_bytes, l.limits.max_message_bytes);
    max_metadata_bytes = std::max(max_metadata_bytes, l.limits.max_metadata_bytes);
  }
  auto upstreams = std::make_shared<Upstreams>();
  for (const config::Upstream& u : config.upstreams) {
    auto opened = Upstream::open(u, max_message_bytes, max_metadata_bytes);
    if (!opened.ok()) return opened.status();
    upstreams->by_name_.emplace(u.name, std::move(*opened));
  }
  return std::shared_ptr<const Upstreams>(std::move(upstreams));
}

Upstream* Upstreams::find(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second.get();
}

}  // namespace curfew::sidecar
