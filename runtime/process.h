// Process-wide settings the runtime's owner chooses once, at start, before any thread runs.
// The runtime itself never changes process-wide state: a library that silently reconfigured
// Abseil for every program linking it would surprise its tests and its users.
#pragma once

namespace curfew::rt {

// Turns off Abseil's mutex deadlock detection for the whole process. Debian's Abseil builds it
// on: it keeps a global graph of every lock gRPC takes, a per-operation cost a proxy does not
// want on its hot path (curfew's own code takes no mutex per call). A debugging aid; tests keep
// it on. Call it from main() (curfew's, the benchmarks') before starting a Runtime.
void disable_abseil_deadlock_detection() noexcept;

}  // namespace curfew::rt
