#include "runtime/fd_watch.h"

#include <sys/epoll.h>

#include <system_error>

namespace curfew::rt {

FdWatch::FdWatch(Loop& loop, int fd) : loop_(loop), fd_(fd) {
  if (int err = loop_.epoll().add(fd, *this); err != 0)
    throw std::system_error(err, std::generic_category(), "FdWatch: epoll_ctl(ADD)");
}

FdWatch::~FdWatch() {
  assert(reader_ == nullptr && writer_ == nullptr && "FdWatch destroyed while a task waits on it");
  loop_.epoll().remove(fd_);
}

void FdWatch::ready(uint32_t events) noexcept {
  if ((events & (EPOLLHUP | EPOLLERR | EPOLLRDHUP)) != 0) {
    hung_up_ = true;
    events |= EPOLLIN | EPOLLOUT;
  }
  if ((events & EPOLLIN) != 0) {
    if (reader_ != nullptr) {
      reader_->wake();
    } else {
      readable_edge_ = true;
    }
  }
  if ((events & EPOLLOUT) != 0) {
    if (writer_ != nullptr) {
      writer_->wake();
    } else {
      writable_edge_ = true;
    }
  }
}

bool FdWatch::take_edge(bool for_write) noexcept {
  bool& edge = for_write ? writable_edge_ : readable_edge_;
  const bool had = edge;
  edge = false;
  return had;
}

}  // namespace curfew::rt
