#include "dns/resolver.h"

#include <ares.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "runtime/to_thread.h"

namespace curfew::dns {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// ares_library_init is not thread-safe: once per process (a function-local static), and never
// cleaned up, since another thread may still be resolving while the process exits.
int library_status() {
  static const int status = ares_library_init(ARES_LIB_INIT_ALL);
  return status;
}

absl::Status failure(absl::StatusCode code, const Query& q, absl::string_view reason) {
  return {code, absl::StrCat("resolving '", q.host, "' via ",
                             q.server.empty() ? "the system resolver" : q.server, ": ", reason)};
}

absl::StatusCode code_of(int status) {
  switch (status) {
    case ARES_ENOTFOUND:
    case ARES_ENODATA:
      return absl::StatusCode::kNotFound;
    case ARES_ETIMEOUT:
    case ARES_ECANCELLED:  // only resolve() cancels, at the query's deadline
    case ARES_EDESTRUCTION:
      return absl::StatusCode::kDeadlineExceeded;
    case ARES_EBADNAME:
    case ARES_EBADSTR:
    case ARES_EBADFAMILY:
    case ARES_EBADFLAGS:
    case ARES_EBADHINTS:
    case ARES_ESERVICE:
      return absl::StatusCode::kInvalidArgument;
    default:
      return absl::StatusCode::kUnavailable;
  }
}

// Digits only: c-ares' own service parsing would take "0x50" (strtoul base 0) or look names up.
std::optional<uint16_t> parse_port(const std::string& text) {
  if (text.empty() || text.size() > 5) return std::nullopt;
  uint32_t port = 0;
  for (const char c : text) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return std::nullopt;
    port = port * 10 + static_cast<uint32_t>(c - '0');
  }
  if (port > 65535) return std::nullopt;
  return static_cast<uint16_t>(port);
}

// A numeric IPv4 or IPv6 host as an address, asking nobody. c-ares 1.18.1 cannot be trusted with
// it: for a dotted quad and AF_UNSPEC it also sends the quad to the DNS server as a name, and
// only answers once that query ends (a silent server: at the timeout).
std::optional<rt::SocketAddress> numeric(const std::string& host) {
  rt::SocketAddress address;
  auto& v4 = reinterpret_cast<sockaddr_in&>(address.storage);
  auto& v6 = reinterpret_cast<sockaddr_in6&>(address.storage);
  if (inet_pton(AF_INET, host.c_str(), &v4.sin_addr) == 1) {
    v4.sin_family = AF_INET;
    address.length = sizeof v4;
    return address;
  }
  if (inet_pton(AF_INET6, host.c_str(), &v6.sin6_addr) == 1) {
    v6.sin6_family = AF_INET6;
    address.length = sizeof v6;
    return address;
  }
  return std::nullopt;
}

// What the getaddrinfo callback leaves for resolve().
struct Outcome {
  bool done = false;
  int status = ARES_SUCCESS;
  std::vector<rt::SocketAddress> addresses;
  int min_ttl = INT_MAX;
};

void keep(Outcome& out, const ares_addrinfo& found) {
  for (const ares_addrinfo_cname* c = found.cnames; c != nullptr; c = c->next)
    out.min_ttl = std::min(out.min_ttl, c->ttl);
  for (const ares_addrinfo_node* n = found.nodes; n != nullptr; n = n->ai_next) {
    if ((n->ai_family != AF_INET && n->ai_family != AF_INET6) || n->ai_addr == nullptr ||
        n->ai_addrlen > sizeof(sockaddr_storage))
      continue;
    rt::SocketAddress address;
    std::memcpy(&address.storage, n->ai_addr, n->ai_addrlen);
    address.length = n->ai_addrlen;
    out.addresses.push_back(address);
    out.min_ttl = std::min(out.min_ttl, n->ai_ttl);
  }
}

// c-ares calls back once per ares_getaddrinfo (possibly from inside it, or from ares_cancel or
// ares_destroy); `found` is ours to free.
void on_addrinfo(void* arg, int status, int /*timeouts*/, ares_addrinfo* found) {
  const std::unique_ptr<ares_addrinfo, decltype(&ares_freeaddrinfo)> owned(found,
                                                                           &ares_freeaddrinfo);
  auto& out = *static_cast<Outcome*>(arg);
  if (out.done) return;
  out.done = true;
  out.status = status;
  if (status != ARES_SUCCESS || found == nullptr) return;
  try {  // no exception may cross c-ares' C frames
    keep(out, *found);
  } catch (...) {
    out.status = ARES_ENOMEM;
    out.addresses.clear();
  }
}

struct ChannelCloser {
  void operator()(ares_channel channel) const { ares_destroy(channel); }
};
using Channel = std::unique_ptr<std::remove_pointer_t<ares_channel>, ChannelCloser>;

timeval to_timeval(Clock::duration d) {
  const auto us = std::chrono::ceil<std::chrono::microseconds>(d).count();
  return {.tv_sec = static_cast<time_t>(us / 1'000'000),
          .tv_usec = static_cast<suseconds_t>(us % 1'000'000)};
}

// Drives the channel's sockets and timers until `out` is done or `deadline` passes (false).
// ares_getsock + poll rather than ares_fds + select: a busy process's fds may exceed FD_SETSIZE.
absl::StatusOr<bool> drive(ares_channel channel, const Outcome& out, Clock::time_point deadline) {
  while (!out.done) {
    const Clock::time_point now = Clock::now();
    if (now >= deadline) return false;
    ares_socket_t socks[ARES_GETSOCK_MAXNUM];
    const int bits = ares_getsock(channel, socks, ARES_GETSOCK_MAXNUM);
    pollfd fds[ARES_GETSOCK_MAXNUM];
    nfds_t count = 0;
    for (int i = 0; i < ARES_GETSOCK_MAXNUM; ++i) {
      const bool readable = ARES_GETSOCK_READABLE(bits, i) != 0;
      const bool writable = ARES_GETSOCK_WRITABLE(bits, i) != 0;
      if (!readable && !writable) continue;
      fds[count++] = {
          .fd = socks[i],
          .events = static_cast<short>((readable ? POLLIN : 0) | (writable ? POLLOUT : 0)),
          .revents = 0};
    }
    timeval left = to_timeval(deadline - now);
    timeval next{};
    const timeval* wait = ares_timeout(channel, &left, &next);
    const long wait_ms = wait->tv_sec * 1000L + (wait->tv_usec + 999) / 1000;  // up: no spin
    const int ready = ::poll(fds, count, static_cast<int>(std::min(wait_ms, long{INT_MAX})));
    if (ready < 0) {
      if (errno == EINTR) continue;
      return absl::UnavailableError(absl::StrCat("poll: ", std::strerror(errno)));
    }
    if (ready == 0) {
      ares_process_fd(channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);  // c-ares' own timeouts
      continue;
    }
    for (nfds_t i = 0; i < count && !out.done; ++i) {
      const short ev = fds[i].revents;
      if (ev == 0) continue;
      ares_process_fd(channel,
                      (ev & (POLLIN | POLLERR | POLLHUP)) != 0 ? fds[i].fd : ARES_SOCKET_BAD,
                      (ev & (POLLOUT | POLLERR)) != 0 ? fds[i].fd : ARES_SOCKET_BAD);
    }
  }
  return true;
}

bool same_host(const rt::SocketAddress& a, const rt::SocketAddress& b) {
  if (a.family() != b.family()) return false;
  if (a.family() == AF_INET) {
    return reinterpret_cast<const sockaddr_in&>(a.storage).sin_addr.s_addr ==
           reinterpret_cast<const sockaddr_in&>(b.storage).sin_addr.s_addr;
  }
  const auto& x = reinterpret_cast<const sockaddr_in6&>(a.storage);
  const auto& y = reinterpret_cast<const sockaddr_in6&>(b.storage);
  return std::memcmp(&x.sin6_addr, &y.sin6_addr, sizeof x.sin6_addr) == 0 &&
         x.sin6_scope_id == y.sin6_scope_id;
}

// The order resolver.h promises: IPv4 first, each family in c-ares' order, no duplicates, and
// the query's port on each.
std::vector<rt::SocketAddress> arrange(std::vector<rt::SocketAddress> found, uint16_t port) {
  std::stable_partition(found.begin(), found.end(),
                        [](const rt::SocketAddress& a) { return a.family() == AF_INET; });
  std::vector<rt::SocketAddress> out;
  for (rt::SocketAddress& a : found) {
    if (std::any_of(out.begin(), out.end(),
                    [&](const rt::SocketAddress& b) { return same_host(a, b); }))
      continue;
    if (a.family() == AF_INET) {
      reinterpret_cast<sockaddr_in&>(a.storage).sin_port = htons(port);
    } else {
      reinterpret_cast<sockaddr_in6&>(a.storage).sin6_port = htons(port);
    }
    out.push_back(a);
  }
  return out;
}

}  // namespace

absl::StatusOr<Answer> resolve(const Query& q) {
  using absl::StatusCode;
  if (q.host.empty()) return failure(StatusCode::kInvalidArgument, q, "empty host name");
  const std::optional<uint16_t> port = parse_port(q.port);
  if (!port) {
    return failure(StatusCode::kInvalidArgument, q,
                   absl::StrCat("port '", q.port, "' is not a number 0-65535"));
  }
  if (std::optional<rt::SocketAddress> address = numeric(q.host)) {
    Answer answer;
    answer.addresses = arrange({*address}, *port);
    return answer;
  }
  if (q.server.find(',') != std::string::npos)  // c-ares would take a list; the API is one server
    return failure(StatusCode::kInvalidArgument, q, "one DNS server expected");
  if (q.timeout <= std::chrono::milliseconds::zero())
    return failure(StatusCode::kDeadlineExceeded, q, "no time left to ask");
  if (const int s = library_status(); s != ARES_SUCCESS)
    return failure(StatusCode::kUnavailable, q, ares_strerror(s));
  // Bounded so that neither the deadline nor c-ares' int milliseconds overflow.
  const std::chrono::milliseconds timeout = std::min<std::chrono::milliseconds>(q.timeout, 24h);
  const Clock::time_point deadline = Clock::now() + timeout;

  // c-ares doubles its per-try timeout on each retry: three tries of t, 2t and 4t fit the
  // query's timeout, and resolve() enforces it anyway.
  ares_options options{};
  int mask = ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES;
  options.timeout = static_cast<int>(std::max<int64_t>(timeout.count() / 7, 1));
  options.tries = 3;
  char dns_only[] = "b";  // the given server only: not /etc/hosts
  if (!q.server.empty()) {
    options.lookups = dns_only;
    mask |= ARES_OPT_LOOKUPS;
  }

  // Declared before the channel: ares_destroy may still call back into it.
  Outcome out;
  ares_channel raw = nullptr;
  if (const int s = ares_init_options(&raw, &options, mask); s != ARES_SUCCESS)
    return failure(StatusCode::kUnavailable, q, absl::StrCat("c-ares: ", ares_strerror(s)));
  const Channel channel(raw);
  if (!q.server.empty()) {
    // c-ares takes "[::1]:53" and "::1", not "[::1]".
    std::string server = q.server;
    if (server.size() > 2 && server.front() == '[' && server.back() == ']')
      server = server.substr(1, server.size() - 2);
    if (const int s = ares_set_servers_ports_csv(raw, server.c_str()); s != ARES_SUCCESS) {
      return failure(StatusCode::kInvalidArgument, q,
                     absl::StrCat("bad DNS server address: ", ares_strerror(s)));
    }
  }

  ares_addrinfo_hints hints{};
  hints.ai_family = AF_UNSPEC;  // A and AAAA
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_protocol = IPPROTO_TCP;
  ares_getaddrinfo(raw, q.host.c_str(), /*service=*/nullptr, &hints, &on_addrinfo, &out);
  const absl::StatusOr<bool> in_time = drive(raw, out, deadline);
  if (!in_time.ok()) return failure(StatusCode::kUnavailable, q, in_time.status().message());
  if (!out.done) ares_cancel(raw);  // calls back now (with what arrived, if anything did)
  if (!out.done || (out.status != ARES_SUCCESS && !*in_time)) {
    return failure(StatusCode::kDeadlineExceeded, q,
                   absl::StrCat("no answer within ", q.timeout.count(), "ms"));
  }
  if (out.status != ARES_SUCCESS) return failure(code_of(out.status), q, ares_strerror(out.status));

  Answer answer;
  answer.addresses = arrange(std::move(out.addresses), *port);
  if (answer.addresses.empty()) return failure(StatusCode::kNotFound, q, "no addresses");
  answer.ttl = std::chrono::seconds(std::max(out.min_ttl, 0));
  return answer;
}

rt::Task<absl::StatusOr<Answer>> resolve_off_loop(Query q) {
  // The job owns its copy: the awaiting task may be cancelled and gone when resolve() returns.
  co_return co_await rt::to_thread([q = std::move(q)] { return resolve(q); });
}

}  // namespace curfew::dns
