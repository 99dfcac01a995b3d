// Dnsmasq: a real DNS server for a test, answering only from a hosts file it owns, on a free
// port of 127.0.0.1, run as the test's own user. Killed and reaped by the destructor; a test
// that dies instead takes it along (spawn_child's PR_SET_PDEATHSIG).
//
//   Dnsmasq dns("127.0.0.2 multi.test\n");
//   dns::resolve({.host = "multi.test", .port = "80", .server = dns.server()});  // curfew's
//   dns.set_hosts("127.0.0.7 multi.test\n");   // rewritten, then SIGHUP: dnsmasq re-reads it
#pragma once

#include <arpa/inet.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "spawn_child.h"

namespace curfew::testing {

inline constexpr char kDnsmasq[] = "/usr/sbin/dnsmasq";

// A port free a moment ago on 127.0.0.1 for both UDP and TCP (dnsmasq listens on both), or 0.
inline int free_dns_port() {
  const int udp = socket(AF_INET, SOCK_DGRAM, 0);
  const int tcp = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  int port = 0;
  if (bind(udp, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      getsockname(udp, reinterpret_cast<sockaddr*>(&addr), &len) == 0 &&
      bind(tcp, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(udp);
  close(tcp);
  return port;
}

class Dnsmasq {
 public:
  // Starts dnsmasq serving `hosts` (a hosts file's text; "ready.test" is added) and waits until
  // it answers (at most a few seconds; ready() says whether it did). `extra_args` go to dnsmasq.
  explicit Dnsmasq(const std::string& hosts, std::vector<std::string> extra_args = {})
      : extra_args_(std::move(extra_args)) {
    std::string tmpl = (std::filesystem::temp_directory_path() / "curfew-dns-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) return;
    dir_ = tmpl;
    write_hosts(hosts);
    // A port taken between free_dns_port() and dnsmasq's bind: try another, a few times.
    for (int attempt = 0; attempt < 5 && !ready_; ++attempt) {
      stop();
      port_ = free_dns_port();
      if (port_ == 0) continue;
      pid_ = spawn_child(argv(), (dir_ / "dnsmasq.log").string());
      ready_ = pid_ > 0 && wait_answering();
    }
  }
  ~Dnsmasq() {
    stop();
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }
  Dnsmasq(const Dnsmasq&) = delete;
  Dnsmasq& operator=(const Dnsmasq&) = delete;

  bool ready() const { return ready_; }
  // "127.0.0.1:port", as dns::Query::server takes it.
  std::string server() const { return "127.0.0.1:" + std::to_string(port_); }
  int port() const { return port_; }
  std::string log() const {
    std::ifstream in(dir_ / "dnsmasq.log");
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }

  // Rewrites the hosts file and tells dnsmasq to re-read it (SIGHUP; it does so asynchronously).
  void set_hosts(const std::string& hosts) {
    write_hosts(hosts);
    if (pid_ > 0) kill(pid_, SIGHUP);
  }

 private:
  // dnsmasq run as root switches to its own user unless told to stay: stay whoever we are, so
  // that it can re-read the hosts file in our private directory.
  std::vector<std::string> argv() const {
    const passwd* user = getpwuid(geteuid());
    const group* grp = getgrgid(getegid());
    std::vector<std::string> args = {
        kDnsmasq,
        "--keep-in-foreground",
        "--port=" + std::to_string(port_),
        "--listen-address=127.0.0.1",
        "--bind-interfaces",
        "--no-resolv",     // no upstream servers...
        "--no-hosts",      // ...nor the machine's /etc/hosts
        "--local=/test/",  // unknown names under .test: NXDOMAIN, not REFUSED
        "--addn-hosts=" + (dir_ / "hosts").string(),
        "--pid-file=",
        "--log-facility=-",
        "--log-queries",
        "--local-ttl=60",  // TTL of hosts-file answers (0 by default)
    };
    if (user != nullptr) args.push_back(std::string("--user=") + user->pw_name);
    if (grp != nullptr) args.push_back(std::string("--group=") + grp->gr_name);
    args.insert(args.end(), extra_args_.begin(), extra_args_.end());
    return args;
  }

  void write_hosts(const std::string& hosts) {
    // Written aside and renamed: dnsmasq never reads a half-written file.
    const auto tmp = dir_ / "hosts.new";
    std::ofstream(tmp) << "127.0.0.1 ready.test\n" << hosts;
    std::filesystem::rename(tmp, dir_ / "hosts");
  }

  // Bounded: up to ~5 s of queries, false as soon as dnsmasq has exited (its port was taken).
  bool wait_answering() {
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (std::chrono::steady_clock::now() < until) {
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        return false;
      }
      if (answers_ready_test()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }

  // One hand-written DNS query (RFC 1035: a header, then QNAME ready.test, QTYPE A, QCLASS IN)
  // over UDP, waiting 200 ms: true if dnsmasq answered it with an address. Not curfew's resolver,
  // so the fixture does not depend on the code under test (nor on its sanitizer build).
  bool answers_ready_test() const {
    const int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0) return false;
    timeval wait{0, 200 * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof wait);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(static_cast<uint16_t>(port_));
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const unsigned char query[] = {
        0x12, 0x34, 0x01, 0x00, 0,   1,   0, 0,   0,   0,   0,   0,               // id, RD, 1 q
        5,    'r',  'e',  'a',  'd', 'y', 4, 't', 'e', 's', 't', 0, 0, 1, 0, 1};  // A, IN
    unsigned char reply[512];
    ssize_t n = -1;
    if (sendto(fd, query, sizeof query, 0, reinterpret_cast<const sockaddr*>(&to), sizeof to) ==
        static_cast<ssize_t>(sizeof query))
      n = recv(fd, reply, sizeof reply, 0);
    close(fd);
    // Our id, a response, rcode 0, at least one answer.
    return n >= 12 && reply[0] == 0x12 && reply[1] == 0x34 && (reply[2] & 0x80) != 0 &&
           (reply[3] & 0x0f) == 0 && (reply[6] != 0 || reply[7] != 0);
  }

  // SIGTERM, up to 5 s to exit, then SIGKILL and reap.
  void stop() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (waitpid(pid_, nullptr, WNOHANG) != pid_) {
      if (std::chrono::steady_clock::now() >= until) {
        kill(pid_, SIGKILL);
        waitpid(pid_, nullptr, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    pid_ = -1;
  }

  std::vector<std::string> extra_args_;
  std::filesystem::path dir_;
  int port_ = 0;
  pid_t pid_ = -1;
  bool ready_ = false;
};

}  // namespace curfew::testing
