# Links gRPC, Protobuf, Abseil and gRPC's own dependencies (upb, re2, c-ares, zlib,
# address_sorting) from their static archives instead of their shared libraries, for every
# executable of this build. OpenSSL stays shared (cpp-httplib, also shared, uses it too: one copy).
#
# Why: on the proxy's per-call path gRPC's thread-locals are reached through __tls_get_addr
# and every call into gRPC goes through the PLT when it is a shared library. Linked statically
# the TLS accesses become direct; measured on curfew at 64 concurrent unary calls: about -10% CPU
# per call (docs/benchmarks.md). Sanitizer builds keep the shared libraries, because the TSan
# suppressions name them (tests/tsan.supp: called_from_lib).
#
# Debian ships both forms of each library side by side (libgrpc.so.29.0.0 and libgrpc.a), and
# the imported targets of their CMake packages name the shared ones: rewrite their locations.
function(curfew_link_static_archives)
  get_property(targets DIRECTORY "${CMAKE_SOURCE_DIR}" PROPERTY IMPORTED_TARGETS)
  set(count 0)
  foreach(target IN LISTS targets)
    if(NOT target MATCHES "^(gRPC|absl|protobuf|c-ares|re2|ZLIB)::")
      continue()
    endif()
    get_target_property(type ${target} TYPE)
    if(NOT type MATCHES "^(SHARED|UNKNOWN)_LIBRARY$")
      continue()
    endif()
    foreach(suffix "" _NONE _RELEASE _RELWITHDEBINFO _DEBUG _NOCONFIG)
      get_target_property(location ${target} IMPORTED_LOCATION${suffix})
      if(NOT location)
        continue()
      endif()
      string(REGEX REPLACE "\\.so(\\.[0-9.]+)?$" ".a" archive "${location}")
      if(archive STREQUAL location OR NOT EXISTS "${archive}")
        continue()
      endif()
      set_target_properties(${target} PROPERTIES IMPORTED_LOCATION${suffix} "${archive}")
      math(EXPR count "${count} + 1")
    endforeach()
  endforeach()
  if(count EQUAL 0)
    message(FATAL_ERROR "CURFEW_STATIC_GRPC: no static archive found for gRPC/Abseil/Protobuf")
  endif()
  message(STATUS "curfew: gRPC, Protobuf and Abseil linked statically (${count} archives)")
endfunction()
