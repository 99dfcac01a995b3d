#include "app/config_watch.h"

#include <sys/stat.h>

#include <climits>
#include <cstdlib>

namespace curfew::sidecar {

ConfigWatch::ConfigWatch(std::string path) : path_(std::move(path)), last_(read()) {}

ConfigWatch::Stamp ConfigWatch::read() const {
  Stamp s;
  char resolved[PATH_MAX];
  if (realpath(path_.c_str(), resolved) != nullptr) s.resolved = resolved;
  struct stat st {};
  if (stat(path_.c_str(), &st) == 0) {
    s.exists = true;
    s.inode = st.st_ino;
    s.size = st.st_size;
    s.mtime_ns = static_cast<long long>(st.st_mtim.tv_sec) * 1000000000LL + st.st_mtim.tv_nsec;
  }
  return s;
}

bool ConfigWatch::changed() {
  Stamp now = read();
  if (now == last_) return false;
  last_ = now;
  return now.exists;  // a file being replaced may vanish for a moment: wait for the new one
}

}  // namespace curfew::sidecar
