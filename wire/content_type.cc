#include "wire/content_type.h"

#include "absl/strings/match.h"

namespace curfew::wire {
namespace {

// This Abseil predates its alias of std::string_view: absl::string_view is a type of its own.
absl::string_view to_absl(std::string_view s) { return {s.data(), s.size()}; }

}  // namespace

bool is_grpc_content_type(std::string_view content_type) {
  constexpr std::string_view kGrpc = "application/grpc";
  if (!absl::StartsWithIgnoreCase(to_absl(content_type), to_absl(kGrpc))) return false;
  std::string_view rest = content_type.substr(kGrpc.size());
  if (rest.empty() || rest.front() == '+') return true;
  // media-type = type "/" subtype *( OWS ";" OWS parameter ) (RFC 9110 §8.3.1).
  while (!rest.empty() && (rest.front() == ' ' || rest.front() == '\t')) rest.remove_prefix(1);
  return !rest.empty() && rest.front() == ';';
}

}  // namespace curfew::wire
