#include "h2/header.h"

namespace curfew::h2 {

void Headers::push_back(Header h) {
  if (aliases(h.name) || aliases(h.value)) {  // the append may move the bytes it reads
    const std::string name(h.name), value(h.value);
    append(name, value);
    return;
  }
  append(h.name, h.value);
}

void Headers::append(std::string_view name, std::string_view value) {
  const auto name_len = static_cast<uint32_t>(name.size());
  const auto value_len = static_cast<uint32_t>(value.size());
  const size_t at = buf_.size();
  buf_.resize(at + kFieldOverhead + name.size() + value.size());
  char* p = buf_.data() + at;
  std::memcpy(p, &name_len, sizeof name_len);
  std::memcpy(p + sizeof name_len, &value_len, sizeof value_len);
  if (!name.empty()) std::memcpy(p + kFieldOverhead, name.data(), name.size());
  if (!value.empty()) std::memcpy(p + kFieldOverhead + name.size(), value.data(), value.size());
  ++count_;
}

}  // namespace curfew::h2
