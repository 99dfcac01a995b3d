// EndpointSetKey: what identifies an upstream's endpoint set in a pool: its name, endpoints and
// TLS settings (a reload that leaves them equal keeps the set and its connections).
//
// Stored as one string ("name\nendpoint...\ntls:key"); looked up per call from the upstream's
// definition itself (EndpointSetKey::Of) without building that string: the lookup hashes and
// compares the same bytes piece by piece (EndpointSetKey::Hash and ::Equal are transparent).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "config/config.h"
#include "sidecar/internal/upstream_tls.h"

namespace curfew::sidecar {

struct EndpointSetKey {
  // The key of `upstream` with `tls` (null: plaintext), as a view of their fields.
  struct Of {
    const config::Upstream& upstream;
    const UpstreamTls* tls;

    // Calls f(piece) for each piece of the key's bytes, in order.
    template <class F>
    void for_each_piece(F&& f) const {
      f(std::string_view(upstream.name));
      for (const std::string& endpoint : upstream.endpoints) {
        f(std::string_view("\n"));
        f(std::string_view(endpoint));
      }
      if (tls != nullptr) {
        f(std::string_view("\ntls:"));
        f(std::string_view(tls->key));
      }
    }
    std::string str() const {
      std::string key;
      for_each_piece([&](std::string_view piece) { key.append(piece); });
      return key;
    }
  };

  // FNV-1a over the key's bytes: the same for a stored key and for the view of its upstream.
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view key) const noexcept { return mix(kBasis, key); }
    size_t operator()(const std::string& key) const noexcept { return mix(kBasis, key); }
    size_t operator()(const Of& key) const noexcept {
      uint64_t h = kBasis;
      key.for_each_piece([&](std::string_view piece) { h = mix(h, piece); });
      return h;
    }

   private:
    static constexpr uint64_t kBasis = 14695981039346656037ull;
    static uint64_t mix(uint64_t h, std::string_view bytes) noexcept {
      for (const char c : bytes) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
      return h;
    }
  };

  struct Equal {
    using is_transparent = void;
    bool operator()(const std::string& a, const std::string& b) const noexcept { return a == b; }
    bool operator()(const Of& view, const std::string& stored) const noexcept {
      return matches(view, stored);
    }
    bool operator()(const std::string& stored, const Of& view) const noexcept {
      return matches(view, stored);
    }

   private:
    static bool matches(const Of& view, std::string_view stored) noexcept {
      bool same = true;
      view.for_each_piece([&](std::string_view piece) {
        if (!same) return;
        same = stored.starts_with(piece);
        stored.remove_prefix(same ? piece.size() : 0);
      });
      return same && stored.empty();
    }
  };
};

}  // namespace curfew::sidecar
