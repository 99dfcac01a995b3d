#!/usr/bin/env bash
# The layering, checked (CTest "layering"): each folder includes only what it may.
#   runtime/  knows nothing of the sidecar, config, metrics, the app or gRPC;
#   config/   knows nothing of the runtime, sidecar, metrics or the app (the only place with YAML);
#   sidecar/  knows nothing of YAML, Prometheus, metrics or the app;
#   metrics/  knows nothing of YAML or the app;
#   wire/     includes only itself, Abseil and the standard library (no gRPC, no nghttp2);
#             the runtime knows nothing of it, the sidecar may use it;
#   h2/       HTTP/2 sessions on nghttp2 over the runtime: no gRPC, no gRPC framing (wire/), no
#             sidecar; the runtime knows nothing of it;
#   X/detail/ and X/internal/ are X's own: only X, its tests and benchmarks include them.
set -uo pipefail
cd "$(dirname "$0")/.."
status=0
forbid() {  # forbid FOLDER REGEX WHY
  local hits
  hits=$(git ls-files "$1/*.cc" "$1/*.h" | xargs grep -nE "^#include [<\"]($2)" 2>/dev/null)
  if [[ -n $hits ]]; then
    echo "layering: $1 must not include $2 ($3):"; echo "$hits"; status=1
  fi
}
forbid runtime 'sidecar/|config/|metrics/|app/' 'the runtime knows nothing of the sidecar'
forbid config 'runtime/|sidecar/|metrics/|app/' 'config is plain structs'
forbid sidecar 'metrics/|app/|yaml-cpp/|prometheus/|config/internal/' 'the sidecar knows nothing of YAML or Prometheus'
forbid metrics 'app/|yaml-cpp/|config/internal/|sidecar/internal/|runtime/detail/' 'metrics read CallReports only'
forbid app 'sidecar/internal/|runtime/detail/|config/internal/' 'the app uses public headers'
forbid runtime 'wire/' 'the runtime knows nothing of gRPC framing'
forbid runtime 'h2/' 'the runtime knows nothing of HTTP/2'
forbid runtime 'grpc/|grpcpp/' 'the runtime knows nothing of gRPC'
forbid h2 'sidecar/|config/|metrics/|app/|wire/|grpc/|grpcpp/' 'h2 is HTTP/2 only'
forbid tls 'sidecar/|config/|metrics/|app/|wire/|grpc/|grpcpp/' 'tls is a transport only'
forbid dns 'sidecar/|config/|metrics/|app/|wire/|h2/|tls/' 'dns resolves names only'
# wire/: every quoted include is wire/ or absl/, every bracketed one a standard header (no '/',
# no '.h': <cstdint>, not <grpc/grpc.h> or <nghttp2/nghttp2.h>).
hits=$(git ls-files 'wire/*.cc' 'wire/*.h' | xargs grep -nE '^#include ' 2>/dev/null |
       grep -vE '#include ("(wire|absl)/[^"]*"|<[a-z_]+>)')
if [[ -n $hits ]]; then
  echo "layering: wire/ includes only wire/, absl/ and the standard library:"; echo "$hits"; status=1
fi
for lib in runtime/detail sidecar/internal config/internal; do
  owner=${lib%%/*}
  hits=$(git ls-files '*.cc' '*.h' | grep -vE "^($owner|tests|bench)/" |
         xargs grep -nE "^#include \"$lib/" 2>/dev/null)
  if [[ -n $hits ]]; then echo "layering: only $owner/, tests and benchmarks include $lib/:"; echo "$hits"; status=1; fi
done
[[ $status == 0 ]] && echo "layering: ok"
exit $status
