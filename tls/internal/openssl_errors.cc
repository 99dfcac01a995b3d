#include "tls/internal/openssl_errors.h"

#include <openssl/err.h>

#include <array>

namespace curfew::tls::internal {

std::string take_openssl_errors(const std::string& fallback) {
  std::string out;
  for (int i = 0; i < 16; ++i) {  // bounded: the queue holds at most 16 entries
    const unsigned long e = ERR_get_error();
    if (e == 0) break;
    std::string reason;
    if (const char* r = ERR_reason_error_string(e); r != nullptr) {
      reason = r;
    } else {
      std::array<char, 256> text{};
      ERR_error_string_n(e, text.data(), text.size());
      reason = text.data();
    }
    if (out.find(reason) != std::string::npos) continue;  // OpenSSL repeats itself up the stack
    if (!out.empty()) out += "; ";
    out += reason;
  }
  ERR_clear_error();
  return out.empty() ? fallback : out;
}

}  // namespace curfew::tls::internal
