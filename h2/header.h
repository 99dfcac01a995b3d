// Header fields as HTTP/2 carries them. Values are bytes: -bin metadata is base64 on the wire and
// passed through untouched.
//
//   h2::Headers h = {{":status", "200"}, {"content-type", "application/grpc"}};
//   h.push_back({"grpc-status", "0"});
//   for (const h2::Header& field : h) ...;            // views into `h`
//   if (auto ct = h2::find_header(h, "content-type")) use(*ct);
//
// A block keeps every name and value in one buffer: one allocation per header block, where a
// vector of string pairs took one per field and one more per long name or value (a proxied unary
// call builds six blocks: measured 30 of its 62 allocations).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <initializer_list>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace curfew::h2 {

// One field. From a Headers, its views stay valid until that Headers is changed or destroyed.
struct Header {
  std::string_view name;
  std::string_view value;
};

// A header block: fields in order, duplicates allowed.
class Headers {
 public:
  class const_iterator;

  Headers() = default;
  Headers(std::initializer_list<Header> fields) {
    size_t bytes = 0;
    for (const Header& h : fields) bytes += kFieldOverhead + h.name.size() + h.value.size();
    buf_.reserve(bytes);
    for (const Header& h : fields) push_back(h);
  }
  Headers(const Headers&) = default;
  Headers& operator=(const Headers&) = default;
  Headers(Headers&& other) noexcept
      : buf_(std::move(other.buf_)), count_(std::exchange(other.count_, 0)) {
    other.buf_.clear();
  }
  Headers& operator=(Headers&& other) noexcept {
    buf_ = std::move(other.buf_);
    other.buf_.clear();
    count_ = std::exchange(other.count_, 0);
    return *this;
  }

  // Appends a field (copies its bytes). `h` may view this block's own fields. Out of line: the
  // many callers inside coroutines would otherwise carry its locals in their frames.
  void push_back(Header h);
  // Room for `bytes` more of names and values (and `fields` fields' bookkeeping) without
  // reallocating.
  void reserve(size_t fields, size_t bytes) {
    buf_.reserve(buf_.size() + fields * kFieldOverhead + bytes);
  }
  void clear() noexcept {
    buf_.clear();
    count_ = 0;
  }

  size_t size() const noexcept { return count_; }
  bool empty() const noexcept { return count_ == 0; }
  // The block's bytes (names, values and 8 a field): reserve(0, other.byte_size()) makes room
  // for all of `other`.
  size_t byte_size() const noexcept { return buf_.size(); }

  const_iterator begin() const noexcept;
  const_iterator end() const noexcept;

 private:
  // Each field: name length and value length (uint32_t each, host order), name, value.
  static constexpr size_t kFieldOverhead = 2 * sizeof(uint32_t);

  bool aliases(std::string_view s) const noexcept {
    return !s.empty() && !buf_.empty() && std::less_equal<>()(buf_.data(), s.data()) &&
           std::less<>()(s.data(), buf_.data() + buf_.size());
  }
  void append(std::string_view name, std::string_view value);

  std::string buf_;
  uint32_t count_ = 0;
};

class Headers::const_iterator {
 public:
  using iterator_category = std::forward_iterator_tag;
  using value_type = Header;
  using difference_type = std::ptrdiff_t;
  using pointer = void;
  using reference = Header;

  const_iterator() = default;
  Header operator*() const noexcept {
    uint32_t name_len = 0, value_len = 0;
    std::memcpy(&name_len, p_, sizeof name_len);
    std::memcpy(&value_len, p_ + sizeof name_len, sizeof value_len);
    const char* name = p_ + kFieldOverhead;
    return {std::string_view(name, name_len), std::string_view(name + name_len, value_len)};
  }
  const_iterator& operator++() noexcept {
    const Header h = **this;
    p_ = h.value.data() + h.value.size();
    return *this;
  }
  const_iterator operator++(int) noexcept {
    const_iterator before = *this;
    ++*this;
    return before;
  }
  bool operator==(const const_iterator& other) const noexcept { return p_ == other.p_; }

 private:
  friend class Headers;
  explicit const_iterator(const char* p) : p_(p) {}
  const char* p_ = nullptr;
};

inline Headers::const_iterator Headers::begin() const noexcept {
  return const_iterator(buf_.data());
}
inline Headers::const_iterator Headers::end() const noexcept {
  return const_iterator(buf_.data() + buf_.size());
}

// The first value of `name` (a lowercase name), or nullopt. A view into `headers`.
inline std::optional<std::string_view> find_header(const Headers& headers, std::string_view name) {
  for (const Header h : headers)
    if (h.name == name) return h.value;
  return std::nullopt;
}

}  // namespace curfew::h2
