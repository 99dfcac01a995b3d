// MessagePipe: one direction of a proxied stream (caller → upstream, or upstream → caller),
// between a reader task that keeps one message read ahead and a writer task.
//
// Reading ahead is what lets the writer merge operations: when the stream ends right behind the
// message it is about to send, it sends both in one operation (one HTTP/2 write instead of two):
// `write_last` upstream, `write_and_finish` to the caller.
//
//   reader:  while (co_await pipe.wait_for_space()) { ok = co_await read(m); pipe.push(ok, m); ...
//   } writer:  MessagePipe::Item item = co_await pipe.pop();  if (!item) -> end of stream
//            pipe.end_is_next()  -> the stream ends right behind `item`
//            pipe.close() (or the Closer) when the writer stops: the reader reads no further
//
// Both tasks run on the same loop thread (no locking). Cancelling either task is safe at any
// await; a message not yet taken is dropped with the pipe.
#pragma once

#include <cstddef>
#include <optional>
#include <utility>

#include <grpcpp/support/byte_buffer.h>

#include "runtime/event.h"
#include "runtime/task.h"

namespace curfew::sidecar {

class MessagePipe {
 public:
  // A message, or no value for the end of the stream (a half-close, or an upstream done).
  using Item = std::optional<grpc::ByteBuffer>;

  // How many items the reader may hold: the one the writer will take next and the one behind
  // it (which tells whether the stream ends there).
  static constexpr size_t kReadAhead = 2;
  static_assert(kReadAhead == 2, "the ring below indexes with & 1");

  // Reader: waits until there is room for another item. False once the writer closed the pipe
  // (the reader should stop reading).
  rt::Task<bool> wait_for_space() {
    while (count_ >= kReadAhead && !closed_) {
      space_.clear();
      co_await space_.wait();
    }
    co_return !closed_;
  }

  // Reader: adds what a read gave: the message when `ok`, else the end of the stream.
  void push(bool ok, grpc::ByteBuffer&& message) {
    slot_[(head_ + count_) & 1] = ok ? Item(std::move(message)) : std::nullopt;
    ++count_;
    items_.set();
  }

  // Writer: the next item, waiting for the reader if need be.
  rt::Task<Item> pop() {
    while (count_ == 0) {
      items_.clear();
      co_await items_.wait();
    }
    co_return take();
  }

  // Writer: true when something is queued right now (the item after the one just popped).
  bool has_next() const noexcept { return count_ > 0; }

  // Writer: true when the stream ends right behind the item just popped (as far as read yet).
  bool end_is_next() const noexcept { return count_ > 0 && !slot_[head_].has_value(); }

  // Writer: drops the queued end-of-stream marker (after merging it into the last write).
  void drop_end() noexcept { take(); }

  // Writer: no more items will be taken; the reader stops at its next wait_for_space().
  void close() noexcept {
    closed_ = true;
    space_.set();
  }

  // Closes the pipe however the writer's scope ends (return, failure, cancellation).
  struct Closer {
    MessagePipe& pipe;
    ~Closer() { pipe.close(); }
  };

 private:
  Item take() noexcept {
    Item item = std::move(slot_[head_]);
    slot_[head_].reset();
    head_ ^= 1;
    --count_;
    space_.set();
    return item;
  }

  Item slot_[kReadAhead];  // a ring of kReadAhead (2) entries
  unsigned head_ = 0;
  unsigned count_ = 0;
  rt::Event items_;  // set when the reader pushed
  rt::Event space_;  // set when the writer took an item or closed
  bool closed_ = false;
};

}  // namespace curfew::sidecar
