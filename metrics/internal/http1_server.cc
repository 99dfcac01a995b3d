#include "metrics/internal/http1_server.h"

#include <netdb.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <optional>
#include <string_view>
#include <thread>
#include <unordered_map>

#include "absl/status/status.h"

namespace curfew::metrics::internal {
namespace {

using Clock = std::chrono::steady_clock;

// A connection that ends after its response first shuts its side and drops what the peer still
// sends, for this long at most: closing with unread input makes the kernel send RST, which can
// destroy the response before the peer has read it (a 431 to a client still sending).
constexpr auto kLinger = std::chrono::milliseconds(1000);
constexpr size_t kLingerBytes = 256 * 1024;
// accept4 out of descriptors leaves the listening socket readable: it is watched again only
// after this, rather than spinning.
constexpr auto kAcceptPause = std::chrono::milliseconds(100);
constexpr int kAcceptsPerPass = 64;
// epoll tags; connection ids start above them and are never reused (an fd number is).
constexpr uint64_t kListenTag = 0;
constexpr uint64_t kWakeTag = 1;

const char* reason_phrase(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 431:
      return "Request Header Fields Too Large";
    case 503:
      return "Service Unavailable";
    default:
      return "Internal Server Error";
  }
}

std::shared_ptr<const std::string> serialize(const HttpResponse& r, bool keep_alive) {
  std::string head = "HTTP/1.1 " + std::to_string(r.status) + " " + reason_phrase(r.status) +
                     "\r\nContent-Type: " + r.content_type +
                     "\r\nContent-Length: " + std::to_string(r.body.size()) + "\r\n";
  if (!keep_alive) head += "Connection: close\r\n";
  if (r.status == 405) head += "Allow: GET\r\n";
  head += "\r\n";
  auto out = std::make_shared<std::string>();
  out->reserve(head.size() + r.body.size());
  *out += head;
  *out += r.body;
  return out;
}

std::string lowercase(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

struct RequestHead {
  std::string_view method;
  std::string_view path;  // without its query
  bool keep_alive = false;
  bool has_body = false;
};

// A request head without its final CRLF CRLF; nullopt when malformed. Of the fields only those
// that decide the connection's fate are read.
std::optional<RequestHead> parse_head(std::string_view head) {
  const size_t line_end = std::min(head.find("\r\n"), head.size());
  const std::string_view line = head.substr(0, line_end);
  const size_t sp1 = line.find(' ');
  const size_t sp2 = line.rfind(' ');
  if (sp1 == std::string_view::npos || sp1 == 0 || sp2 == sp1) return std::nullopt;
  RequestHead r;
  r.method = line.substr(0, sp1);
  r.path = line.substr(sp1 + 1, sp2 - sp1 - 1);
  r.path = r.path.substr(0, r.path.find('?'));
  const std::string_view version = line.substr(sp2 + 1);
  if (version != "HTTP/1.1" && version != "HTTP/1.0") return std::nullopt;
  r.keep_alive = version == "HTTP/1.1";  // HTTP/1.0: one request per connection
  for (size_t at = line_end; at < head.size();) {
    at += 2;  // the CRLF ending the previous line
    const size_t next = std::min(head.find("\r\n", at), head.size());
    const std::string_view field = head.substr(at, next - at);
    at = next;
    const size_t colon = field.find(':');
    if (colon == std::string_view::npos) return std::nullopt;
    const std::string name = lowercase(field.substr(0, colon));
    const std::string_view value = trim(field.substr(colon + 1));
    if (name == "connection" && lowercase(value).find("close") != std::string::npos) {
      r.keep_alive = false;
    } else if ((name == "content-length" && value != "0") || name == "transfer-encoding") {
      r.has_body = true;
    }
  }
  return r;
}

// A listening socket on host:port, or -1 and errno. "::" is dual-stack (IPV6_V6ONLY off), or
// 0.0.0.0 where IPv6 cannot be bound.
int listen_on(const std::string& host, int port) {
  const auto try_bind = [port](const std::string& h, bool dual_stack) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    addrinfo* res = nullptr;
    if (::getaddrinfo(h.c_str(), std::to_string(port).c_str(), &hints, &res) != 0 || !res) {
      errno = EADDRNOTAVAIL;
      return -1;
    }
    int fd = -1;
    int error = EADDRNOTAVAIL;
    for (addrinfo* a = res; a != nullptr && fd < 0; a = a->ai_next) {
      fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
      if (fd < 0) {
        error = errno;
        continue;
      }
      const int yes = 1;
      const int no = 0;
      // SO_REUSEADDR only (no SO_REUSEPORT): a restart rebinds at once, while a second process
      // on the port is an error instead of silently sharing the scrapes.
      ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
      if (dual_stack && a->ai_family == AF_INET6) {
        ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &no, sizeof no);
      }
      if (::bind(fd, a->ai_addr, a->ai_addrlen) != 0 || ::listen(fd, SOMAXCONN) != 0) {
        error = errno;
        ::close(fd);
        fd = -1;
      }
    }
    ::freeaddrinfo(res);
    if (fd < 0) errno = error;
    return fd;
  };
  if (host != "::") return try_bind(host, false);
  const int fd = try_bind("::", true);
  if (fd >= 0 || errno == EADDRINUSE) return fd;
  return try_bind("0.0.0.0", false);
}

int bound_port(int fd) {
  sockaddr_storage a{};
  socklen_t len = sizeof a;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) return 0;
  return ntohs(a.ss_family == AF_INET6 ? reinterpret_cast<const sockaddr_in6*>(&a)->sin6_port
                                       : reinterpret_cast<const sockaddr_in*>(&a)->sin_port);
}

}  // namespace

class Http1Server::Impl {
 public:
  Impl(int listen_fd, int epoll_fd, int wake_fd, std::vector<Route> routes, Limits limits)
      : listen_fd_(listen_fd),
        epoll_(epoll_fd),
        wake_(wake_fd),
        port_(bound_port(listen_fd)),
        routes_(std::move(routes)),
        limits_(limits) {
    epoll_event e{.events = EPOLLIN, .data = {.u64 = kListenTag}};
    ::epoll_ctl(epoll_, EPOLL_CTL_ADD, listen_fd_, &e);
    e.data.u64 = kWakeTag;
    ::epoll_ctl(epoll_, EPOLL_CTL_ADD, wake_, &e);
    worker_ = std::thread([this] { work(); });
    loop_ = std::thread([this] { run(); });
  }
  ~Impl() { stop(); }

  int port() const noexcept { return port_; }

  void stop() {
    if (stopped_.exchange(true)) return;
    {
      std::lock_guard lock(mu_);  // the worker checks stopping_ under it: no lost wake-up
      stopping_ = true;
    }
    jobs_cv_.notify_all();
    wake();
    loop_.join();
    worker_.join();
    for (auto& [id, c] : conns_) ::close(c.fd);
    conns_.clear();
    ::close(listen_fd_);
    ::close(wake_);
    ::close(epoll_);
  }

 private:
  enum class State {
    kReading,       // waiting for (the rest of) a request head
    kAwaitingSlow,  // the worker computes the response; nothing is read meanwhile
    kWriting,       // the socket took part of the response; waiting for room
    kClosing,       // answered and our side shut; dropping input until the peer closes
  };
  struct Conn {
    int fd = -1;
    State state = State::kReading;
    bool between_requests = false;  // kept alive, no byte of the next request yet
    bool keep_alive = true;         // of the request being answered
    bool peer_closed = false;       // the peer shut its side: answer what came, then close
    uint32_t events = 0;            // what epoll watches
    Clock::time_point since;        // when the clock of the current state started
    std::string in;
    std::shared_ptr<const std::string> out;
    size_t out_sent = 0;
    size_t dropped = 0;  // bytes read and dropped while closing
  };
  struct Job {
    uint64_t conn;
    const Route* route;
    bool keep_alive;
  };
  struct Done {
    uint64_t conn;
    std::shared_ptr<const std::string> response;
  };

  // --- The connection thread ---

  void run() {
    epoll_event events[64];
    int wait_ms = -1;
    while (!stopping_) {
      const int n = ::epoll_wait(epoll_, events, 64, wait_ms);
      for (int i = 0; i < n; ++i) dispatch(events[i]);
      wait_ms = expire();
    }
  }

  void dispatch(const epoll_event& e) {
    if (e.data.u64 == kListenTag) {
      accept_all();
      return;
    }
    if (e.data.u64 == kWakeTag) {
      uint64_t count;
      [[maybe_unused]] const ssize_t r = ::read(wake_, &count, sizeof count);
      deliver_done();
      return;
    }
    const uint64_t id = e.data.u64;
    Conn* c = find(id);
    if (c == nullptr) return;  // closed earlier in this batch
    if (e.events & (EPOLLERR | EPOLLHUP)) {
      close_conn(id);
      return;
    }
    if ((e.events & EPOLLIN) && c->state == State::kClosing) {
      drop_input(id);
    } else if ((e.events & EPOLLIN) && c->state == State::kReading) {
      read_requests(id);
    } else if ((e.events & EPOLLOUT) && c->state == State::kWriting && write_out(id)) {
      serve(id);  // the next pipelined request
    }
  }

  Conn* find(uint64_t id) {
    const auto it = conns_.find(id);
    return it == conns_.end() ? nullptr : &it->second;
  }

  void watch(uint64_t id, Conn& c, uint32_t events) {
    if (c.events == events) return;
    c.events = events;
    epoll_event e{.events = events, .data = {.u64 = id}};
    ::epoll_ctl(epoll_, EPOLL_CTL_MOD, c.fd, &e);
  }

  void close_conn(uint64_t id) {
    const auto it = conns_.find(id);
    ::epoll_ctl(epoll_, EPOLL_CTL_DEL, it->second.fd, nullptr);
    ::close(it->second.fd);
    conns_.erase(it);
  }

  void accept_all() {
    for (int i = 0; i < kAcceptsPerPass; ++i) {  // the rest on the next pass (level-triggered)
      const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
          epoll_event e{.events = 0, .data = {.u64 = kListenTag}};
          ::epoll_ctl(epoll_, EPOLL_CTL_MOD, listen_fd_, &e);
          accept_resume_ = Clock::now() + kAcceptPause;
        }
        return;
      }
      if (static_cast<int>(conns_.size()) >= limits_.max_connections) evict_one();
      const uint64_t id = next_id_++;
      Conn& c = conns_[id];
      c.fd = fd;
      c.since = Clock::now();
      c.events = EPOLLIN;
      epoll_event e{.events = EPOLLIN, .data = {.u64 = id}};
      ::epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &e);
      read_requests(id);  // a prober's request is usually there already: answer it now
    }
  }

  // Makes room for a newcomer, who is never refused (a prober must get in): a connection that
  // is closing, else the one that has waited longest for a request, else the oldest response
  // not taken, else the oldest waiting for a scrape.
  void evict_one() {
    const auto rank = [](State s) {
      switch (s) {
        case State::kClosing:
          return 0;
        case State::kReading:
          return 1;
        case State::kWriting:
          return 2;
        case State::kAwaitingSlow:
          break;
      }
      return 3;
    };
    const auto victim = std::min_element(conns_.begin(), conns_.end(), [&](auto& a, auto& b) {
      const int ra = rank(a.second.state);
      const int rb = rank(b.second.state);
      return ra != rb ? ra < rb : a.second.since < b.second.since;
    });
    if (victim != conns_.end()) close_conn(victim->first);
  }

  void read_requests(uint64_t id) {
    Conn& c = *find(id);
    char buf[4096];
    // Bounded: a head is at most max_request_bytes, what is left waits in the socket.
    while (c.in.size() <= limits_.max_request_bytes) {
      const ssize_t n = ::recv(c.fd, buf, sizeof buf, 0);
      if (n > 0) {
        if (c.between_requests) {  // a request begins: its head's clock starts
          c.between_requests = false;
          c.since = Clock::now();
        }
        c.in.append(buf, static_cast<size_t>(n));
      } else if (n == 0) {
        c.peer_closed = true;
        break;
      } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
        break;
      } else if (errno != EINTR) {
        close_conn(id);
        return;
      }
    }
    serve(id);
  }

  // Answers the complete requests read, in order, until one has to wait (for the worker or for
  // room in the socket) or the connection ends.
  void serve(uint64_t id) {
    for (;;) {
      Conn* c = find(id);
      if (c == nullptr || c->state != State::kReading) return;
      while (c->in.starts_with("\r\n")) c->in.erase(0, 2);  // stray line ends between requests
      const size_t end = c->in.find("\r\n\r\n");
      if (end == std::string::npos && c->in.size() <= limits_.max_request_bytes) {
        if (c->peer_closed) close_conn(id);  // the rest of the head will not come
        return;
      }
      if (end == std::string::npos || end > limits_.max_request_bytes) {
        answer(id, {.status = 431, .body = "request head too large\n"}, false);
        continue;
      }
      const std::optional<RequestHead> head = parse_head(std::string_view(c->in).substr(0, end));
      if (!head) {
        c->in.clear();
        answer(id, {.status = 400, .body = "bad request\n"}, false);
        continue;
      }
      // A body is never read: the connection ends after this answer.
      const bool keep_alive = head->keep_alive && !head->has_body && !c->peer_closed;
      const auto route = std::find_if(routes_.begin(), routes_.end(),
                                      [&](const Route& r) { return r.path == head->path; });
      const bool get = head->method == "GET";
      c->in.erase(0, end + 4);  // `head` points into it: used up above
      if (route == routes_.end()) {
        answer(id, {.status = 404, .body = "not found\n"}, keep_alive);
      } else if (!get) {
        answer(id, {.status = 405, .body = "only GET\n"}, keep_alive);
      } else if (route->slow) {
        c->state = State::kAwaitingSlow;
        c->keep_alive = keep_alive;
        watch(id, *c, 0);  // nothing is read until this request is answered
        {
          std::lock_guard lock(mu_);
          jobs_.push_back({id, &*route, keep_alive});
        }
        jobs_cv_.notify_one();
        return;
      } else {
        answer(id, call(*route), keep_alive);
      }
    }
  }

  static HttpResponse call(const Route& route) {
    try {
      return route.handler();
    } catch (const std::exception&) {
      return {.status = 500, .body = "internal error\n"};
    }
  }

  void answer(uint64_t id, const HttpResponse& r, bool keep_alive) {
    send(id, serialize(r, keep_alive), keep_alive);
  }

  // Starts sending `response`; true once all of it is sent and the connection reads again.
  bool send(uint64_t id, std::shared_ptr<const std::string> response, bool keep_alive) {
    Conn& c = *find(id);
    c.out = std::move(response);
    c.out_sent = 0;
    c.keep_alive = keep_alive;
    c.state = State::kWriting;
    c.since = Clock::now();
    return write_out(id);
  }

  // Sends what the socket takes; true once the response is all sent and the connection is back
  // to reading requests.
  bool write_out(uint64_t id) {
    Conn& c = *find(id);
    while (c.out_sent < c.out->size()) {
      const ssize_t n =
          ::send(c.fd, c.out->data() + c.out_sent, c.out->size() - c.out_sent, MSG_NOSIGNAL);
      if (n > 0) {
        c.out_sent += static_cast<size_t>(n);
      } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        watch(id, c, EPOLLOUT);
        return false;
      } else if (!(n < 0 && errno == EINTR)) {
        close_conn(id);
        return false;
      }
    }
    c.out.reset();
    if (!c.keep_alive) {
      begin_close(id, c);
      return false;
    }
    c.state = State::kReading;
    c.between_requests = c.in.empty();
    c.since = Clock::now();
    watch(id, c, EPOLLIN);
    return true;
  }

  void begin_close(uint64_t id, Conn& c) {
    if (c.peer_closed) {  // nothing more can arrive: no reset to fear
      close_conn(id);
      return;
    }
    ::shutdown(c.fd, SHUT_WR);
    c.state = State::kClosing;
    c.since = Clock::now();
    c.in.clear();
    watch(id, c, EPOLLIN);
  }

  void drop_input(uint64_t id) {
    Conn& c = *find(id);
    char buf[4096];
    for (;;) {
      const ssize_t n = ::recv(c.fd, buf, sizeof buf, 0);
      if (n > 0) {
        c.dropped += static_cast<size_t>(n);
        if (c.dropped > kLingerBytes) break;
      } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        return;
      } else if (!(n < 0 && errno == EINTR)) {
        break;  // the peer closed (or failed): done
      }
    }
    close_conn(id);
  }

  void deliver_done() {
    std::vector<Done> done;
    {
      std::lock_guard lock(mu_);
      done.swap(done_);
    }
    for (Done& d : done) {
      Conn* c = find(d.conn);
      if (c == nullptr || c->state != State::kAwaitingSlow) continue;  // evicted meanwhile
      if (send(d.conn, std::move(d.response), c->keep_alive)) serve(d.conn);
    }
  }

  Clock::time_point deadline(const Conn& c) const {
    switch (c.state) {
      case State::kReading:
        return c.since + (c.between_requests ? limits_.idle_timeout : limits_.request_timeout);
      case State::kWriting:
        return c.since + limits_.write_timeout;
      case State::kClosing:
        return c.since + kLinger;
      case State::kAwaitingSlow:
        break;  // the worker always answers
    }
    return Clock::time_point::max();
  }

  // Closes the connections past their deadline, resumes accepting after a pause; the epoll
  // timeout until the next deadline (-1: none).
  int expire() {
    const Clock::time_point now = Clock::now();
    Clock::time_point next = Clock::time_point::max();
    if (accept_resume_) {
      if (now >= *accept_resume_) {
        epoll_event e{.events = EPOLLIN, .data = {.u64 = kListenTag}};
        ::epoll_ctl(epoll_, EPOLL_CTL_MOD, listen_fd_, &e);
        accept_resume_.reset();
      } else {
        next = *accept_resume_;
      }
    }
    std::vector<uint64_t> late;
    for (const auto& [id, c] : conns_) {
      const Clock::time_point d = deadline(c);
      if (now >= d) {
        late.push_back(id);
      } else {
        next = std::min(next, d);
      }
    }
    for (uint64_t id : late) close_conn(id);
    if (next == Clock::time_point::max()) return -1;
    return static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(next - now).count());
  }

  void wake() {
    const uint64_t one = 1;
    [[maybe_unused]] const ssize_t n = ::write(wake_, &one, sizeof one);
  }

  // --- The worker thread: slow handlers ---

  void work() {
    for (;;) {  // until stop()
      std::vector<Job> batch;
      {
        std::unique_lock lock(mu_);
        jobs_cv_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
        if (stopping_) return;
        // Every request already waiting for this route shares this run: it starts after each of
        // them arrived, so none gets older data than it asked for, and a crowd costs one run.
        const Route* route = jobs_.front().route;
        const auto rest = std::stable_partition(jobs_.begin(), jobs_.end(),
                                                [&](const Job& j) { return j.route == route; });
        batch.assign(jobs_.begin(), rest);
        jobs_.erase(jobs_.begin(), rest);
      }
      const HttpResponse r = call(*batch.front().route);
      std::shared_ptr<const std::string> kept_alive, closing;
      std::vector<Done> done;
      for (const Job& job : batch) {
        auto& bytes = job.keep_alive ? kept_alive : closing;
        if (!bytes) bytes = serialize(r, job.keep_alive);
        done.push_back({job.conn, bytes});
      }
      {
        std::lock_guard lock(mu_);
        for (Done& d : done) done_.push_back(std::move(d));
      }
      wake();
    }
  }

  const int listen_fd_;
  const int epoll_;
  const int wake_;
  const int port_;
  const std::vector<Route> routes_;
  const Limits limits_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> stopped_{false};
  // The connection thread's own.
  std::unordered_map<uint64_t, Conn> conns_;
  uint64_t next_id_ = kWakeTag + 1;
  std::optional<Clock::time_point> accept_resume_;
  // Shared with the worker, under mu_.
  std::mutex mu_;
  std::condition_variable jobs_cv_;
  std::deque<Job> jobs_;
  std::vector<Done> done_;
  std::thread worker_;
  std::thread loop_;
};

absl::StatusOr<std::unique_ptr<Http1Server>> Http1Server::start(const std::string& host, int port,
                                                                std::vector<Route> routes,
                                                                Limits limits) {
  const int listen_fd = listen_on(host, port);
  if (listen_fd < 0) {
    return absl::UnavailableError(std::strerror(errno));
  }
  const int epoll_fd = ::epoll_create1(EPOLL_CLOEXEC);
  const int wake_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (epoll_fd < 0 || wake_fd < 0) {
    const int error = errno;
    for (int fd : {listen_fd, epoll_fd, wake_fd}) {
      if (fd >= 0) ::close(fd);
    }
    return absl::InternalError(std::string("epoll: ") + std::strerror(error));
  }
  return std::unique_ptr<Http1Server>(new Http1Server(
      std::make_unique<Impl>(listen_fd, epoll_fd, wake_fd, std::move(routes), limits)));
}

Http1Server::Http1Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Http1Server::~Http1Server() { stop(); }
int Http1Server::port() const noexcept { return impl_->port(); }
void Http1Server::stop() { impl_->stop(); }

}  // namespace curfew::metrics::internal
