// Running a test server as a process until it is told to stop.
#pragma once

namespace curfew::testing {

// Blocks SIGINT and SIGTERM in the calling thread. Call it first thing in main(), before any
// thread exists, so every thread gRPC starts inherits the mask and the signals stay pending for
// WaitForTerminationSignal() instead of killing the process mid-RPC.
void BlockTerminationSignals();

// Waits until SIGINT or SIGTERM arrives and returns its number.
int WaitForTerminationSignal();

}  // namespace curfew::testing
