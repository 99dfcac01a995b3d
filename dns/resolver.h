// Name resolution with c-ares: a host name and port to the addresses to dial, asking the system's
// resolver (/etc/hosts, then the servers of /etc/resolv.conf) or one given DNS server.
//
//   absl::StatusOr<dns::Answer> found = co_await dns::resolve_off_loop(
//       {.host = "backend.test", .port = "50051", .server = "10.0.0.53:53"});
//   if (!found.ok()) ...;  // "resolving 'backend.test' via 10.0.0.53:53: Domain name not found"
//
// resolve() blocks (a poll loop on its own c-ares channel): call it from the blocking pool, never
// from a loop thread. Calls from several threads at once are fine. Knows nothing of the sidecar.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/socket.h"
#include "runtime/task.h"

namespace curfew::dns {

struct Query {
  std::string host;  // a DNS name, or a numeric IPv4/IPv6 address (returned, nobody asked)
  std::string port;  // numeric, 0-65535: set on every address returned
  // "" : the system's resolver (/etc/hosts, then /etc/resolv.conf's servers, search domains and
  // ndots). Otherwise one DNS server, "ip", "ip:port", "[ipv6]:port" or "[ipv6]" (port 53 when
  // none): only that server is asked and /etc/hosts is not read (so "localhost", which c-ares
  // never sends to a server, fails); resolv.conf's search domains and ndots still apply.
  std::string server;
  // The whole resolution's bound, retries included (c-ares retries within it).
  std::chrono::milliseconds timeout{5000};
};

struct Answer {
  // Never empty, no duplicates. Order: every IPv4 address before every IPv6 one; within a family,
  // the order c-ares gives (RFC 6724, ties in the server's order), so that a server rotating its
  // records still spreads the dialers that take the first address.
  std::vector<rt::SocketAddress> addresses;
  // The smallest TTL of the records (CNAMEs included): when to resolve again. 0 when none is
  // known (a numeric host, /etc/hosts, a server answering with TTL 0): callers pick a floor.
  std::chrono::seconds ttl{0};
};

// Resolves `q.host` to IPv4 and IPv6 addresses (A and AAAA), blocking at most `q.timeout` (plus
// scheduling noise). Errors name the host, the server asked ("the system resolver" for "") and
// c-ares' reason, e.g. "resolving 'x.test' via 127.0.0.1:5353: Domain name not found":
//   InvalidArgument   : an empty host, a port that is not a number 0-65535, a malformed server,
//                       a malformed name;
//   NotFound          : no such name, or no A/AAAA record for it;
//   DeadlineExceeded  : no answer within `q.timeout`, or c-ares gave up retrying before (1.18.1
//                       counts a refused UDP query as a timeout too); a timeout <= 0 asks nobody;
//   Unavailable       : anything else (the server refused the query, failed, sent garbage).
// When only the A or only the AAAA answer arrives within `q.timeout`, that one is the answer.
absl::StatusOr<Answer> resolve(const Query& q);

// resolve() on the caller's loop's blocking pool (rt::to_thread). Cancelling the awaiting task
// returns at once; the blocking call still runs to its end (at most `q.timeout`) on its pool
// thread, on its own copy of `q`, and its answer is dropped.
rt::Task<absl::StatusOr<Answer>> resolve_off_loop(Query q);

}  // namespace curfew::dns
