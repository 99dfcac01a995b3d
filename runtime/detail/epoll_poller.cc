#include "runtime/detail/epoll_poller.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

namespace curfew::rt {
namespace {

std::runtime_error sys_error(const char* what) {
  return std::runtime_error(std::string(what) + ": " + std::strerror(errno));
}

// The wake-up eventfd's epoll_data: no Source has this address.
void* const kWakeTag = nullptr;

constexpr int kBatch = 64;

}  // namespace

EpollPoller::EpollPoller(WakeHandler on_wake) : on_wake_(std::move(on_wake)) {
  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) throw sys_error("epoll_create1");
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) {
    ::close(epoll_fd_);
    throw sys_error("eventfd");
  }
  epoll_event ev{};
  ev.events = EPOLLIN;  // level-triggered: drained on every wake-up
  ev.data.ptr = kWakeTag;
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev) != 0) {
    ::close(wake_fd_);
    ::close(epoll_fd_);
    throw sys_error("epoll_ctl(eventfd)");
  }
}

EpollPoller::~EpollPoller() { close(); }

int EpollPoller::add(int fd, Source& source) noexcept {
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  ev.data.ptr = &source;
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) return errno;
  sources_.fetch_add(1, std::memory_order_relaxed);
  return 0;
}

void EpollPoller::remove(int fd) noexcept {
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr) == 0)
    sources_.fetch_sub(1, std::memory_order_relaxed);
}

int EpollPoller::wait(std::optional<Duration> timeout, int max_events) {
  epoll_event events[kBatch];
  const int want = max_events < kBatch ? max_events : kBatch;
  timespec ts{};
  timespec* tsp = nullptr;
  if (timeout) {
    const auto ns = std::max<long long>(
        0, std::chrono::duration_cast<std::chrono::nanoseconds>(*timeout).count());
    ts.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
    ts.tv_nsec = static_cast<long>(ns % 1'000'000'000);
    tsp = &ts;
  }
  int n = -1;
  if (!no_pwait2_) {
    n = ::epoll_pwait2(epoll_fd_, events, want, tsp, nullptr);
    if (n < 0 && errno == ENOSYS) no_pwait2_ = true;  // Linux < 5.11: milliseconds below
  }
  if (no_pwait2_) {
    // Rounded up: a timer must not fire early.
    int ms = -1;
    if (timeout) {
      const auto ns = std::max<long long>(
          0, std::chrono::duration_cast<std::chrono::nanoseconds>(*timeout).count());
      ms = static_cast<int>(std::min<long long>((ns + 999'999) / 1'000'000, 1'000'000'000));
    }
    n = ::epoll_wait(epoll_fd_, events, want, ms);
  }
  if (n < 0) {
    if (errno == EINTR) return 0;
    throw sys_error("epoll_pwait2");
  }
  bool woken = false;
  for (int i = 0; i < n; ++i) {
    if (events[i].data.ptr == kWakeTag) {
      woken = true;
      continue;
    }
    static_cast<Source*>(events[i].data.ptr)->ready(events[i].events);
  }
  if (woken) {
    drain_wake();
    on_wake_();
  }
  return n;
}

void EpollPoller::wake() {
  const uint64_t one = 1;
  // EAGAIN only when the counter is about to overflow: a wake-up is pending anyway.
  [[maybe_unused]] auto written = ::write(wake_fd_, &one, sizeof one);
}

void EpollPoller::drain_wake() noexcept {
  uint64_t count = 0;
  [[maybe_unused]] auto read = ::read(wake_fd_, &count, sizeof count);
}

size_t EpollPoller::close() {
  if (epoll_fd_ >= 0) ::close(epoll_fd_);
  if (wake_fd_ >= 0) ::close(wake_fd_);
  epoll_fd_ = wake_fd_ = -1;
  return static_cast<size_t>(sources_.load(std::memory_order_relaxed));
}

}  // namespace curfew::rt
