// ConfigWatch: tells when the config file changed on disk, including Kubernetes' ConfigMap
// update, which swaps a symlink (..data) rather than writing the file. Polled from the main
// thread; compares the resolved path, inode, size and modification time.
#pragma once

#include <string>

namespace curfew::sidecar {

class ConfigWatch {
 public:
  explicit ConfigWatch(std::string path);
  // True once per change since the last call (or since construction).
  bool changed();

 private:
  struct Stamp {
    std::string resolved;
    unsigned long long inode = 0, size = 0;
    long long mtime_ns = 0;
    bool exists = false;
    bool operator==(const Stamp&) const = default;
  };
  Stamp read() const;

  std::string path_;
  Stamp last_;
};

}  // namespace curfew::sidecar
